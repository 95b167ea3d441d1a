//! A minimal line diff (longest common subsequence) for showing a policy document before and
//! after our statement is added: unchanged lines prefixed with two spaces, added `+ `, removed
//! `- `. Policies are small, so the quadratic table is fine.

/// The diff of `before` → `after`, one prefixed line per input line.
pub fn lines(before: &str, after: &str) -> Vec<String> {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+ {}", b[j]));
            j += 1;
        } else {
            out.push(format!("- {}", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_common_lines_and_marks_additions() {
        assert_eq!(
            lines("a\nb\nc", "a\nb\nx\nc"),
            vec!["  a", "  b", "+ x", "  c"]
        );
        assert_eq!(lines("", "a\nb"), vec!["+ a", "+ b"]);
        assert_eq!(lines("a\nb", "b"), vec!["- a", "  b"]);
    }
}
