//! The embedding check end to end: the reqwest fetcher against a local HTTP server and a local
//! HTTPS server (a throwaway CA made with rcgen, served with rustls) serving real-world framing
//! header variants, redirects, slow and huge responses.
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

fn app(seen: Seen) -> Router {
    Router::new()
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
        .with_state(seen)
}

async fn serve() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = app(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), seen)
}

/// A TCP listener that completes a TLS handshake before handing the connection to axum.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that refuses the certificate fails its handshake: serve the next one.
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A fresh CA and a server certificate it signed for `localhost` and `127.0.0.1`: returns the
/// CA's PEM (what the client trusts) and the server's rustls configuration.
fn test_pki() -> (String, tokio_rustls::rustls::ServerConfig) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use tokio_rustls::rustls;
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "onboard preflight test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    (ca_cert.pem(), config)
}

/// The same routes over HTTPS; returns the base URL and the CA certificate to trust.
async fn serve_tls() -> (String, String, Seen) {
    let seen: Seen = Arc::default();
    let app = app(seen.clone());
    let (ca_pem, config) = test_pki();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener {
        tcp,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    };
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("https://{addr}"), ca_pem, seen)
}

fn fetcher(timeout: Duration) -> ReqwestPageFetcher {
    ReqwestPageFetcher::new(FetchLimits {
        max_redirects: 3,
        timeout,
        max_body_bytes: 64 * 1024,
        // The test servers listen on loopback.
        allow_private_networks: true,
    })
    .unwrap()
}

/// Every variant at `base` decided as expected for both domains of `demo-east`, without a
/// credential or cookie ever sent.
async fn assert_every_variant(f: &ReqwestPageFetcher, base: &str, seen: &Seen) {
    let domains = instance_domains("demo-east");
    for (name, _, expected) in VARIANTS {
        let url = format!("{base}/p/{name}");
        let (findings, verdicts) = check_embedding(f, &url, &domains).await;
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
    let (findings, verdicts) = check_embedding(f, &format!("{base}/p/exact"), &domains).await;
    assert_eq!(verdicts[1].1.decision, FrameDecision::Blocked);
    assert_eq!(findings.len(), 1);
    assert!(findings[0]
        .fix
        .contains("frame-ancestors https://demo-east.awsapps.com"));

    // No credentials or cookies were ever sent.
    let seen = seen.lock().unwrap();
    assert!(seen.len() > VARIANTS.len());
    for headers in seen.iter() {
        assert!(headers.get("authorization").is_none());
        assert!(headers.get("cookie").is_none());
        assert!(headers.get("proxy-authorization").is_none());
    }
}

#[tokio::test]
async fn every_header_variant_is_decided_per_instance_domain() {
    let (base, seen) = serve().await;
    assert_every_variant(&fetcher(Duration::from_secs(5)), &base, &seen).await;
}

fn tls_fetcher(ca_pem: &str) -> ReqwestPageFetcher {
    ReqwestPageFetcher::with_extra_roots(
        FetchLimits {
            max_redirects: 3,
            timeout: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            allow_private_networks: true,
        },
        ca_pem.as_bytes(),
    )
    .unwrap()
}

/// The same variants over HTTPS (the scheme real access URLs use), by IP and by host name.
#[tokio::test]
async fn every_header_variant_is_decided_over_https() {
    let (base, ca_pem, seen) = serve_tls().await;
    let f = tls_fetcher(&ca_pem);
    assert_every_variant(&f, &base, &seen).await;
    let by_name = base.replace("127.0.0.1", "localhost");
    let got = f.fetch_headers(&format!("{by_name}/p/deny")).await.unwrap();
    assert_eq!(got.status, 200);
    assert!(got.final_url.starts_with("https://localhost:"));
    // Redirects stay on HTTPS and are bounded the same way.
    let got = f.fetch_headers(&format!("{base}/hop1")).await.unwrap();
    assert_eq!(got.final_url, format!("{base}/p/self"));
    assert_eq!(got.redirects.len(), 2);
}

/// Without the test CA the certificate is not trusted: the fetch fails (an "unknown" verdict
/// upstream), it is never silently accepted.
#[tokio::test]
async fn an_untrusted_certificate_is_a_fetch_error() {
    let (base, _, seen) = serve_tls().await;
    let err = fetcher(Duration::from_secs(5))
        .fetch_headers(&format!("{base}/p/none"))
        .await
        .unwrap_err();
    assert!(
        err.reason.to_ascii_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(seen.lock().unwrap().is_empty(), "no request got through");
    let (findings, verdicts) = check_embedding(
        &fetcher(Duration::from_secs(5)),
        &format!("{base}/p/none"),
        &instance_domains("demo-east"),
    )
    .await;
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].severity, Severity::Warning);
    assert!(verdicts
        .iter()
        .all(|(_, v)| v.decision == FrameDecision::Unknown));
    assert!(ReqwestPageFetcher::with_extra_roots(FetchLimits::default(), b"not a pem").is_err());
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

/// The API's fetcher (the default limits) never contacts a non-public address: not an IP
/// literal, not a name that resolves to loopback, and not a redirect hop to one — while the
/// same page is fetched when private networks are allowed.
#[tokio::test]
async fn by_default_only_public_addresses_are_contacted() {
    let (base, seen) = serve().await;
    let port = base.rsplit(':').next().unwrap().to_string();
    let public_only = ReqwestPageFetcher::new(FetchLimits::default()).unwrap();
    for url in [
        format!("http://127.0.0.1:{port}/p/none"),
        format!("http://[::1]:{port}/p/none"),
        format!("http://localhost:{port}/p/none"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://[::ffff:127.0.0.1]:9001/2018-06-01/runtime/invocation/next".to_string(),
    ] {
        let err = public_only.fetch_headers(&url).await.unwrap_err();
        assert!(err.reason.contains("public"), "{url}: {}", err.reason);
        if url.contains("localhost") {
            assert!(
                !err.reason.contains("127.0.0.1") && !err.reason.contains("::1"),
                "resolved addresses are not echoed: {}",
                err.reason
            );
        }
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the server"
    );
    // Allowed, the same loopback page is fetched.
    let f = fetcher(Duration::from_secs(5));
    assert_eq!(
        f.fetch_headers(&format!("{base}/p/none"))
            .await
            .unwrap()
            .status,
        200
    );
}

#[test]
fn public_means_globally_routable() {
    use onboard_aws::page_fetcher::is_public;
    for ip in [
        "93.184.216.34",
        "8.8.8.8",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
    ] {
        assert!(is_public(ip.parse().unwrap()), "{ip}");
    }
    for ip in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "64:ff9b::a00:1",
        "fec0::1",
        "2002:a00:1::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "100::1",
    ] {
        assert!(!is_public(ip.parse().unwrap()), "{ip}");
    }
}
