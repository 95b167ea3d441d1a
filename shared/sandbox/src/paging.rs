//! Pagination shared by every list operation: items are ordered by a stable key and a token
//! names the key the next page starts at, so deletions between pages never skip an item.

/// The token did not come from this sandbox.
#[derive(Debug)]
pub(crate) struct InvalidToken;

const PREFIX: &str = "sbx1.";

/// One page of `items` (already sorted by key) starting at `token`, at most `max` long, and
/// the token of the next page when there is one.
pub(crate) fn page<T>(
    items: Vec<(String, T)>,
    token: Option<&str>,
    max: usize,
) -> Result<(Vec<T>, Option<String>), InvalidToken> {
    let start = match token {
        None => None,
        Some(token) => Some(token.strip_prefix(PREFIX).ok_or(InvalidToken)?.to_owned()),
    };
    let mut rest = items
        .into_iter()
        .filter(|(key, _)| start.as_ref().is_none_or(|s| key >= s))
        .peekable();
    let mut out = Vec::new();
    while out.len() < max.max(1) {
        match rest.next() {
            Some((_, item)) => out.push(item),
            None => break,
        }
    }
    let next = rest.peek().map(|(key, _)| format!("{PREFIX}{key}"));
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once() {
        let items = |n: usize| (0..n).map(|i| (format!("{i:03}"), i)).collect::<Vec<_>>();
        let (first, next) = page(items(5), None, 2).unwrap_or_default();
        assert_eq!(first, vec![0, 1]);
        let (second, next) = page(items(5), next.as_deref(), 2).unwrap_or_default();
        assert_eq!(second, vec![2, 3]);
        let (third, next) = page(items(5), next.as_deref(), 2).unwrap_or_default();
        assert_eq!((third, next), (vec![4], None));
        assert!(page(items(5), Some("garbage"), 2).is_err());
    }
}
