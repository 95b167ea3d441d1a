//! Table test of the frame-ancestors / X-Frame-Options evaluator over real-world header
//! variants, plus a no-panic fuzz over random and mutated headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use onboard_core::preflight::{evaluate_framing, FrameDecision};
use proptest::prelude::*;

use FrameDecision::{Allowed as A, Blocked as B, Unknown as U};

const NEW: &str = "https://demo-east.my.connect.aws";
const OLD: &str = "https://demo-east.awsapps.com";
const PAGE: &str = "https://crm.example.com/app";

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

const CSP: &str = "Content-Security-Policy";
const XFO: &str = "X-Frame-Options";

/// (name, headers, page, ancestor, expected)
type Row = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
    FrameDecision,
);

const ROWS: &[Row] = &[
    ("no headers", &[], PAGE, NEW, A),
    ("unrelated headers only", &[("Content-Type", "text/html"), ("Cache-Control", "no-store")], PAGE, NEW, A),
    ("AWS recommendation, new domain", &[(CSP, "frame-ancestors https://*.awsapps.com https://*.my.connect.aws;")], PAGE, NEW, A),
    ("AWS recommendation, old domain", &[(CSP, "frame-ancestors https://*.awsapps.com https://*.my.connect.aws;")], PAGE, OLD, A),
    ("exact instance origin", &[(CSP, "frame-ancestors https://demo-east.my.connect.aws")], PAGE, NEW, A),
    ("exact instance origin, other domain asked", &[(CSP, "frame-ancestors https://demo-east.my.connect.aws")], PAGE, OLD, B),
    ("other instance only", &[(CSP, "frame-ancestors https://other.my.connect.aws")], PAGE, NEW, B),
    ("'none'", &[(CSP, "frame-ancestors 'none'")], PAGE, NEW, B),
    ("'self' only", &[(CSP, "frame-ancestors 'self'")], PAGE, NEW, B),
    ("'self' plus connect", &[(CSP, "frame-ancestors 'self' https://*.my.connect.aws")], PAGE, NEW, A),
    ("star", &[(CSP, "frame-ancestors *")], PAGE, NEW, A),
    ("scheme-only https:", &[(CSP, "frame-ancestors https:")], PAGE, NEW, A),
    ("scheme-only http: upgrades to https", &[(CSP, "frame-ancestors http:")], PAGE, NEW, A),
    ("scheme-only data: does not match", &[(CSP, "frame-ancestors data:")], PAGE, NEW, B),
    ("http scheme host source upgrades", &[(CSP, "frame-ancestors http://demo-east.my.connect.aws")], PAGE, NEW, A),
    ("scheme-less host on https page", &[(CSP, "frame-ancestors demo-east.my.connect.aws")], PAGE, NEW, A),
    ("scheme-less wildcard host", &[(CSP, "frame-ancestors *.my.connect.aws")], PAGE, NEW, A),
    ("wildcard does not match bare domain", &[(CSP, "frame-ancestors https://*.demo-east.my.connect.aws")], PAGE, NEW, B),
    ("wildcard too deep is fine", &[(CSP, "frame-ancestors https://*.connect.aws")], PAGE, NEW, A),
    ("suffix lookalike does not match", &[(CSP, "frame-ancestors https://*.y.connect.aws")], PAGE, NEW, B),
    ("host without dot boundary", &[(CSP, "frame-ancestors https://east.my.connect.aws")], PAGE, NEW, B),
    ("explicit default port", &[(CSP, "frame-ancestors https://demo-east.my.connect.aws:443")], PAGE, NEW, A),
    ("wrong port", &[(CSP, "frame-ancestors https://demo-east.my.connect.aws:8443")], PAGE, NEW, B),
    ("port wildcard", &[(CSP, "frame-ancestors https://*.my.connect.aws:*")], PAGE, NEW, A),
    ("path slash is fine", &[(CSP, "frame-ancestors https://demo-east.awsapps.com/")], PAGE, OLD, A),
    ("path /connect/ never matches an origin", &[(CSP, "frame-ancestors https://demo-east.awsapps.com/connect/")], PAGE, OLD, B),
    ("upper-case directive and host", &[("content-security-policy", "FRAME-ANCESTORS HTTPS://*.MY.CONNECT.AWS")], PAGE, NEW, A),
    ("frame-ancestors among other directives", &[(CSP, "default-src 'self'; script-src 'self' 'unsafe-inline'; frame-ancestors 'self' https://*.my.connect.aws; object-src 'none'")], PAGE, NEW, A),
    ("CSP without frame-ancestors, no XFO", &[(CSP, "default-src 'self'; script-src https://cdn.example.com")], PAGE, NEW, A),
    ("default-src does not govern framing", &[(CSP, "default-src 'none'")], PAGE, NEW, A),
    ("two headers, both allow", &[(CSP, "frame-ancestors https://*.my.connect.aws"), (CSP, "frame-ancestors https:")], PAGE, NEW, A),
    ("two headers, second blocks", &[(CSP, "frame-ancestors https://*.my.connect.aws"), (CSP, "frame-ancestors 'self'")], PAGE, NEW, B),
    ("two comma-joined policies, one blocks", &[(CSP, "frame-ancestors *, frame-ancestors 'none'")], PAGE, NEW, B),
    ("duplicate directive: first wins", &[(CSP, "frame-ancestors 'none'; frame-ancestors *")], PAGE, NEW, B),
    ("duplicate directive: first wins (allow)", &[(CSP, "frame-ancestors *; frame-ancestors 'none'")], PAGE, NEW, A),
    ("report-only ignored", &[("Content-Security-Policy-Report-Only", "frame-ancestors 'none'")], PAGE, NEW, A),
    ("report-only ignored, XFO still applies", &[("Content-Security-Policy-Report-Only", "frame-ancestors *"), (XFO, "DENY")], PAGE, NEW, B),
    ("XFO DENY", &[(XFO, "DENY")], PAGE, NEW, B),
    ("XFO deny lower-case, spaces", &[(XFO, "  deny ")], PAGE, NEW, B),
    ("XFO SAMEORIGIN", &[(XFO, "SAMEORIGIN")], PAGE, NEW, B),
    ("XFO SAMEORIGIN on the same origin", &[(XFO, "SAMEORIGIN")], NEW, NEW, A),
    ("XFO ALLOW-FROM connect", &[(XFO, "ALLOW-FROM https://demo-east.my.connect.aws")], PAGE, NEW, U),
    ("XFO ALLOWALL (non-standard, ignored)", &[(XFO, "ALLOWALL")], PAGE, NEW, A),
    ("XFO garbage ignored", &[(XFO, "whatever")], PAGE, NEW, A),
    ("XFO conflicting values", &[(XFO, "DENY"), (XFO, "SAMEORIGIN")], PAGE, NEW, B),
    ("XFO repeated same value", &[(XFO, "SAMEORIGIN, sameorigin")], PAGE, NEW, B),
    ("frame-ancestors wins over XFO DENY", &[(XFO, "DENY"), (CSP, "frame-ancestors https://*.my.connect.aws")], PAGE, NEW, A),
    ("frame-ancestors blocks even with permissive XFO", &[(XFO, "ALLOWALL"), (CSP, "frame-ancestors 'self'")], PAGE, NEW, B),
    ("empty frame-ancestors blocks", &[(CSP, "frame-ancestors")], PAGE, NEW, B),
    ("frame-ancestors with only junk blocks", &[(CSP, "frame-ancestors 'unsafe-inline' 'nonce-abc' %%%")], PAGE, NEW, B),
    ("'none' with another source: other source counts", &[(CSP, "frame-ancestors 'none' https://*.my.connect.aws")], PAGE, NEW, A),
    ("trailing semicolons and tabs", &[(CSP, ";;\tframe-ancestors\thttps://*.my.connect.aws\t;;")], PAGE, NEW, A),
    ("invalid directive name ignored", &[(CSP, "fr@me-ancestors 'none'")], PAGE, NEW, A),
    ("malformed host with wildcard in middle", &[(CSP, "frame-ancestors https://demo-*.my.connect.aws")], PAGE, NEW, B),
    ("http localhost page, schemeless connect host", &[(CSP, "frame-ancestors *.my.connect.aws")], "http://localhost:3000", NEW, A),
    ("http localhost page with 'self'", &[(CSP, "frame-ancestors 'self'")], "http://localhost:3000", NEW, B),
    ("header name with odd case and spaces", &[(" x-FRAME-options ", "DENY")], PAGE, NEW, B),
    ("ancestor not a URL", &[], PAGE, "not a url", U),
];

#[test]
fn framing_table() {
    assert!(ROWS.len() >= 30, "{} rows", ROWS.len());
    let mut failures = Vec::new();
    for (name, headers, page, ancestor, expected) in ROWS {
        let verdict = evaluate_framing(&h(headers), page, ancestor);
        if verdict.decision != *expected {
            failures.push(format!(
                "{name}: expected {expected:?}, got {:?} ({})",
                verdict.decision, verdict.evidence
            ));
        }
        // Evidence always says something; a non-allowed verdict (except a bad ancestor)
        // always comes with a fix.
        assert!(!verdict.evidence.is_empty(), "{name}: empty evidence");
        if verdict.decision == B {
            assert!(verdict.fix.is_some(), "{name}: blocked without a fix");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn blocked_fix_names_the_exact_source_and_evidence_quotes_the_header() {
    let v = evaluate_framing(
        &h(&[(
            CSP,
            "default-src 'self'; frame-ancestors 'self' https://partner.example",
        )]),
        PAGE,
        NEW,
    );
    assert_eq!(v.decision, B);
    assert!(v
        .evidence
        .contains("frame-ancestors 'self' https://partner.example"));
    let fix = v.fix.unwrap();
    assert!(
        fix.contains("frame-ancestors https://demo-east.my.connect.aws"),
        "{fix}"
    );

    let v = evaluate_framing(&h(&[(XFO, "SAMEORIGIN")]), PAGE, OLD);
    assert!(v.evidence.contains("X-Frame-Options: SAMEORIGIN"));
    assert!(v
        .fix
        .unwrap()
        .contains("frame-ancestors https://demo-east.awsapps.com"));
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Content-Security-Policy".to_owned()),
        Just("content-security-policy".to_owned()),
        Just("Content-Security-Policy-Report-Only".to_owned()),
        Just("X-Frame-Options".to_owned()),
        ".{0,20}",
    ]
}

fn csp_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("frame-ancestors".to_owned()),
        Just("'self'".to_owned()),
        Just("'none'".to_owned()),
        Just("*".to_owned()),
        Just("https:".to_owned()),
        Just("https://*.my.connect.aws".to_owned()),
        Just("*.:*/".to_owned()),
        Just(";".to_owned()),
        Just(",".to_owned()),
        Just("DENY".to_owned()),
        Just("SAMEORIGIN".to_owned()),
        Just("ALLOW-FROM".to_owned()),
        Just("://".to_owned()),
        Just(":".to_owned()),
        Just("*.".to_owned()),
        "[a-z0-9.:/*'-]{0,12}",
        "\\PC{0,8}",
        ".{0,8}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop::collection::vec(csp_token(), 0..12).prop_map(|t| t.join(" "))
}

fn origin() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(NEW.to_owned()),
        Just(OLD.to_owned()),
        Just("http://localhost:3000".to_owned()),
        Just("https://[::1]:8443".to_owned()),
        Just("https://127.0.0.1".to_owned()),
        Just("data:text/html,x".to_owned()),
        ".{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_random_headers(
        headers in prop::collection::vec((header_name(), header_value()), 0..6),
        page in origin(),
        ancestor in origin(),
    ) {
        let v = evaluate_framing(&headers, &page, &ancestor);
        prop_assert!(!v.evidence.is_empty());
    }

    #[test]
    fn never_panics_on_mutated_real_headers(
        row in 0..ROWS.len(),
        cut in any::<prop::sample::Index>(),
        insert in "\\PC{0,4}",
    ) {
        let (_, headers, page, ancestor, _) = ROWS[row];
        let mut headers = h(headers);
        if let Some((_, value)) = headers.first_mut() {
            let chars: Vec<char> = value.chars().collect();
            let at = cut.index(chars.len() + 1);
            let mut s: String = chars[..at].iter().collect();
            s.push_str(&insert);
            s.extend(chars[at..].iter());
            *value = s;
        }
        let _ = evaluate_framing(&headers, page, ancestor);
    }

    #[test]
    fn adding_the_ancestor_to_every_policy_allows_it(
        lists in prop::collection::vec(header_value(), 1..4),
    ) {
        // Whatever each frame-ancestors list holds, adding the exact instance origin to it
        // (the fix we suggest) makes the page frameable — unless the value is cut by `;`/`,`.
        let headers: Vec<(String, String)> = lists
            .iter()
            .map(|l| {
                let clean: String = l.chars().filter(|c| !matches!(c, ';' | ',')).collect();
                (CSP.to_owned(), format!("frame-ancestors {clean} {NEW}"))
            })
            .collect();
        let v = evaluate_framing(&headers, PAGE, NEW);
        prop_assert_eq!(v.decision, A, "{:?} {}", headers, v.evidence);
    }
}
