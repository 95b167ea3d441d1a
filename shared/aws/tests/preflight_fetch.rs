//! The embedding check end to end: the reqwest fetcher against a local HTTP server serving
//! real-world framing header variants, redirects, slow and huge responses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use onboard_aws::page_fetcher::{FetchLimits, ReqwestPageFetcher};
use onboard_core::preflight::{
    check_embedding, instance_domains, FrameDecision, PageFetcher, Severity,
};

type Seen = Arc<Mutex<Vec<HeaderMap>>>;

/// (route, headers served, expected decision for demo-east.my.connect.aws)
type Variant = (
    &'static str,
    &'static [(&'static str, &'static str)],
    FrameDecision,
);

const VARIANTS: &[Variant] = &[
    ("none", &[], FrameDecision::Allowed),
    (
        "aws",
        &[(
            "content-security-policy",
            "frame-ancestors https://*.awsapps.com https://*.my.connect.aws;",
        )],
        FrameDecision::Allowed,
    ),
    (
        "exact",
        &[(
            "content-security-policy",
            "default-src 'self'; frame-ancestors https://demo-east.my.connect.aws",
        )],
        FrameDecision::Allowed,
    ),
    (
        "self",
        &[("content-security-policy", "frame-ancestors 'self'")],
        FrameDecision::Blocked,
    ),
    (
        "none-kw",
        &[("content-security-policy", "frame-ancestors 'none'")],
        FrameDecision::Blocked,
    ),
    (
        "deny",
        &[("x-frame-options", "DENY")],
        FrameDecision::Blocked,
    ),
    (
        "sameorigin",
        &[("x-frame-options", "SAMEORIGIN")],
        FrameDecision::Blocked,
    ),
    (
        "fa-wins",
        &[
            ("x-frame-options", "DENY"),
            (
                "content-security-policy",
                "frame-ancestors https://*.my.connect.aws",
            ),
        ],
        FrameDecision::Allowed,
    ),
    (
        "two-csp",
        &[
            (
                "content-security-policy",
                "frame-ancestors https://*.my.connect.aws",
            ),
            ("content-security-policy", "frame-ancestors 'self'"),
        ],
        FrameDecision::Blocked,
    ),
    (
        "report-only",
        &[(
            "content-security-policy-report-only",
            "frame-ancestors 'none'",
        )],
        FrameDecision::Allowed,
    ),
    (
        "allow-from",
        &[(
            "x-frame-options",
            "ALLOW-FROM https://demo-east.my.connect.aws",
        )],
        FrameDecision::Unknown,
    ),
];

async fn page(
    State(seen): State<Seen>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response<Body> {
    seen.lock().unwrap().push(headers);
    let mut builder = Response::builder().status(StatusCode::OK);
    let served = VARIANTS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, h, _)| *h)
        .unwrap_or(&[]);
    for (k, v) in served {
        builder = builder.header(*k, *v);
    }
    builder.body(Body::from("<html>app</html>")).unwrap()
}

fn redirect(to: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", to)
        .body(Body::empty())
        .unwrap()
}

async fn serve() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/p/{name}", get(page))
        .route("/hop1", get(|| async { redirect("/hop2") }))
        .route("/hop2", get(|| async { redirect("/p/self") }))
        .route("/loop", get(|| async { redirect("/loop") }))
        .route("/to-file", get(|| async { redirect("file:///etc/passwd") }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/huge",
            get(|| async {
                // A 32 MiB body: the fetcher stops reading at its size limit.
                Response::builder()
                    .header("x-frame-options", "DENY")
                    .body(Body::from(vec![b'x'; 32 * 1024 * 1024]))
                    .unwrap()
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), seen)
}

fn fetcher(timeout: Duration) -> ReqwestPageFetcher {
    ReqwestPageFetcher::new(FetchLimits {
        max_redirects: 3,
        timeout,
        max_body_bytes: 64 * 1024,
    })
    .unwrap()
}

#[tokio::test]
async fn every_header_variant_is_decided_per_instance_domain() {
    let (base, seen) = serve().await;
    let f = fetcher(Duration::from_secs(5));
    let domains = instance_domains("demo-east");
    for (name, _, expected) in VARIANTS {
        let url = format!("{base}/p/{name}");
        let (findings, verdicts) = check_embedding(&f, &url, &domains).await;
        assert_eq!(verdicts.len(), 2);
        let (domain, verdict) = &verdicts[0];
        assert_eq!(domain, "https://demo-east.my.connect.aws");
        assert_eq!(verdict.decision, *expected, "{name}: {}", verdict.evidence);
        if matches!(*name, "none" | "aws" | "report-only") {
            assert!(findings.is_empty(), "{name}: {findings:?}");
            assert!(verdicts
                .iter()
                .all(|(_, v)| v.decision == FrameDecision::Allowed));
        } else if *expected == FrameDecision::Allowed {
            // Allows only the new domain: the old one gets a warning.
            assert_eq!(verdicts[1].1.decision, FrameDecision::Blocked, "{name}");
        } else {
            assert!(!findings.is_empty(), "{name}");
            assert!(findings.iter().all(|f| f.severity == Severity::Warning));
            assert!(findings.iter().all(|f| f.check == "embedding"));
            assert!(
                findings[0].evidence.contains(&url),
                "{}",
                findings[0].evidence
            );
        }
    }
    // The exact-origin policy allows the new domain but not the old one.
    let (findings, verdicts) = check_embedding(&f, &format!("{base}/p/exact"), &domains).await;
    assert_eq!(verdicts[1].1.decision, FrameDecision::Blocked);
    assert_eq!(findings.len(), 1);
    assert!(findings[0]
        .fix
        .contains("frame-ancestors https://demo-east.awsapps.com"));

    // No credentials or cookies were ever sent.
    for headers in seen.lock().unwrap().iter() {
        assert!(headers.get("authorization").is_none());
        assert!(headers.get("cookie").is_none());
        assert!(headers.get("proxy-authorization").is_none());
    }
}

#[tokio::test]
async fn redirects_are_followed_and_bounded() {
    let (base, _) = serve().await;
    let f = fetcher(Duration::from_secs(5));
    let got = f.fetch_headers(&format!("{base}/hop1")).await.unwrap();
    assert_eq!(got.final_url, format!("{base}/p/self"));
    assert_eq!(got.redirects.len(), 2);
    assert_eq!(got.status, 200);
    assert!(got
        .headers
        .iter()
        .any(|(n, v)| n == "content-security-policy" && v == "frame-ancestors 'self'"));

    let err = f.fetch_headers(&format!("{base}/loop")).await.unwrap_err();
    assert!(err.reason.contains("more than 3 redirects"), "{err}");

    let err = f
        .fetch_headers(&format!("{base}/to-file"))
        .await
        .unwrap_err();
    assert!(err.reason.contains("only http and https"), "{err}");
}

#[tokio::test]
async fn timeouts_size_limits_and_credentials() {
    let (base, _) = serve().await;
    let f = fetcher(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let err = f.fetch_headers(&format!("{base}/slow")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        err.reason.contains("timed out") || err.reason.contains("longer"),
        "{err}"
    );

    // A huge body still yields the headers quickly.
    let f = fetcher(Duration::from_secs(5));
    let got = f.fetch_headers(&format!("{base}/huge")).await.unwrap();
    assert!(got
        .headers
        .iter()
        .any(|(n, v)| n == "x-frame-options" && v == "DENY"));

    // A 404 is evaluated (no framing headers: allowed) but flagged.
    let (findings, verdicts) = check_embedding(
        &f,
        &format!("{base}/missing"),
        &instance_domains("demo-east"),
    )
    .await;
    assert!(verdicts
        .iter()
        .all(|(_, v)| v.decision == FrameDecision::Allowed));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(findings[0].evidence.contains("HTTP 404"));

    let with_creds = base.replace("http://", "http://user:secret@");
    let err = f
        .fetch_headers(&format!("{with_creds}/p/none"))
        .await
        .unwrap_err();
    assert!(err.reason.contains("credentials"), "{err}");

    // An unreachable URL becomes an "unknown" warning, not an error.
    let (findings, verdicts) = check_embedding(
        &f,
        "http://127.0.0.1:9/nothing-listens-here",
        &instance_domains("demo-east"),
    )
    .await;
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].severity, Severity::Warning);
    assert!(verdicts
        .iter()
        .all(|(_, v)| v.decision == FrameDecision::Unknown));
}
