//! Webhook signatures: HMAC-SHA256 over the timestamp and the raw body.
//!
//! The sender puts two headers on the request (names configurable):
//!
//! * timestamp header (default `X-Onboard-Timestamp`): Unix time in **seconds**, decimal, e.g.
//!   `1767225600`;
//! * signature header (default `X-Onboard-Signature`): `sha256=` followed by the lowercase hex
//!   of `HMAC-SHA256(secret, "<timestamp>.<raw body>")` — the timestamp header's value exactly
//!   as sent, one `.` (0x2E), then the body bytes exactly as sent (no re-serialization, no
//!   trimming). The `sha256=` prefix is optional; several comma-separated signatures are
//!   accepted (any one matching passes), which allows rotating the secret without downtime.
//!
//! Each source may have secrets of its own (`WEBHOOK_SECRET_JIRA`, …): then only those verify
//! its requests, so a secret leaked from one ticketing system cannot sign for another. Sources
//! without their own use the shared secret(s).
//!
//! A request whose timestamp is more than the replay window (default 300 s) away from now, in
//! either direction, is refused. The comparison is constant-time (`hmac`'s `verify_slice`).

use axum::http::{HeaderMap, HeaderName};
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Default header names.
pub const DEFAULT_SIGNATURE_HEADER: &str = "x-onboard-signature";
pub const DEFAULT_TIMESTAMP_HEADER: &str = "x-onboard-timestamp";

/// The shortest webhook secret the API accepts (the configuration refuses a shorter one).
pub const MIN_SECRET_BYTES: usize = 32;

/// How webhook requests are authenticated.
#[derive(Clone)]
pub struct SignatureConfig {
    /// The shared secret(s): the first signs in tests and tools; any one verifies.
    pub secrets: Vec<Vec<u8>>,
    /// Secrets of one source (`servicenow`, `jira`, `generic`): only these verify it.
    pub by_source: std::collections::BTreeMap<String, Vec<Vec<u8>>>,
    pub signature_header: HeaderName,
    pub timestamp_header: HeaderName,
    /// Maximum distance between the timestamp and now, in seconds.
    pub tolerance_secs: u64,
}

impl std::fmt::Debug for SignatureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureConfig")
            .field("secrets", &format!("[{} redacted]", self.secrets.len()))
            .field("by_source", &self.by_source.keys().collect::<Vec<_>>())
            .field("signature_header", &self.signature_header)
            .field("timestamp_header", &self.timestamp_header)
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl SignatureConfig {
    /// Default headers and a 300-second window.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        SignatureConfig {
            secrets: vec![secret.into()],
            by_source: Default::default(),
            signature_header: HeaderName::from_static(DEFAULT_SIGNATURE_HEADER),
            timestamp_header: HeaderName::from_static(DEFAULT_TIMESTAMP_HEADER),
            tolerance_secs: 300,
        }
    }

    /// The secrets that verify `source`'s requests.
    pub fn secrets_for(&self, source: &str) -> &[Vec<u8>] {
        self.by_source.get(source).unwrap_or(&self.secrets)
    }
}

/// Signatures one header may list (a sender signing with the old and the new secret during a
/// rotation needs two).
pub const MAX_SIGNATURES: usize = 4;

/// The signature header value for `body` sent at `timestamp` (for senders and tests).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    match <HmacSha256 as KeyInit>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// Check a webhook request from `source`; the error says which check failed (never the
/// expected value). One HMAC pass over the body per secret, whatever the candidates.
pub fn verify(
    cfg: &SignatureConfig,
    source: &str,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: u64,
) -> Result<(), String> {
    let header = |name: &HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let ts_raw = header(&cfg.timestamp_header)
        .ok_or_else(|| format!("the {} header is missing", cfg.timestamp_header))?;
    let sig_raw = header(&cfg.signature_header)
        .ok_or_else(|| format!("the {} header is missing", cfg.signature_header))?;
    let ts: u64 = ts_raw.parse().map_err(|_| {
        format!(
            "the {} header is not Unix time in seconds",
            cfg.timestamp_header
        )
    })?;
    if ts.abs_diff(now_secs) > cfg.tolerance_secs {
        return Err(format!(
            "the timestamp is {} s away from the server's clock; the replay window is {} s",
            ts.abs_diff(now_secs),
            cfg.tolerance_secs
        ));
    }
    // Every candidate costs an HMAC over the whole body per secret, unauthenticated: only a
    // few are checked, and only well-formed ones (64 hex digits; "" and other lengths never
    // match a SHA-256 MAC).
    let listed = sig_raw.split(',').count();
    if listed > MAX_SIGNATURES {
        return Err(format!(
            "the {} header lists {listed} signatures; at most {MAX_SIGNATURES} are accepted \
             (one per secret in rotation)",
            cfg.signature_header
        ));
    }
    let candidates: Vec<Vec<u8>> = sig_raw
        .split(',')
        .map(|s| s.trim())
        .map(|s| s.strip_prefix("sha256=").unwrap_or(s))
        .filter(|s| s.len() == 64)
        .filter_map(|s| hex::decode(s).ok())
        .collect();
    if candidates.is_empty() {
        return Err(format!(
            "the {} header is not sha256=<hex>",
            cfg.signature_header
        ));
    }
    for secret in cfg.secrets_for(source) {
        let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(secret) else {
            continue;
        };
        mac.update(ts_raw.as_bytes());
        mac.update(b".");
        mac.update(body);
        // The body is hashed once; each candidate is a constant-time compare of the result.
        for sig in &candidates {
            if mac.clone().verify_slice(sig).is_ok() {
                return Ok(());
            }
        }
    }
    Err("the signature does not match the body and timestamp".to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use axum::http::HeaderValue;

    use super::*;

    fn headers(ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(DEFAULT_TIMESTAMP_HEADER, HeaderValue::from_str(ts).unwrap());
        h.insert(
            DEFAULT_SIGNATURE_HEADER,
            HeaderValue::from_str(sig).unwrap(),
        );
        h
    }

    #[test]
    fn a_known_vector_verifies() {
        // python3: hmac.new(b"s3cret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        let sig = sign(b"s3cret", "1700000000", br#"{"a":1}"#);
        assert_eq!(
            sig,
            "sha256=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
        let cfg = SignatureConfig::new("s3cret");
        assert!(verify(
            &cfg,
            "generic",
            &headers("1700000000", &sig),
            br#"{"a":1}"#,
            1_700_000_100
        )
        .is_ok());
    }

    #[test]
    fn rotation_bad_and_stale_signatures() {
        let mut cfg = SignatureConfig::new("new");
        cfg.secrets.push(b"old".to_vec());
        let body = b"{}";
        let old = sign(b"old", "1000", body);
        assert!(verify(&cfg, "generic", &headers("1000", &old), body, 1000).is_ok());
        let other = sign(b"other", "1000", body);
        let two = format!("{other}, {old}");
        assert!(verify(&cfg, "generic", &headers("1000", &two), body, 1000).is_ok());
        let err = verify(&cfg, "generic", &headers("1000", &other), body, 1000).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        let err = verify(&cfg, "generic", &headers("1000", &old), body, 1301).unwrap_err();
        assert!(err.contains("replay window"), "{err}");
        let err = verify(&cfg, "generic", &headers("1000", &old), b"{ }", 1000).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        let err = verify(&cfg, "generic", &headers("soon", &old), body, 1000).unwrap_err();
        assert!(err.contains("seconds"), "{err}");
        let err = verify(&cfg, "generic", &HeaderMap::new(), body, 1000).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }

    /// Issue 21: a header of thousands of commas (the empty string hex-decodes) against a
    /// 256 KiB body cost an HMAC per candidate per secret, unauthenticated. Now more than
    /// MAX_SIGNATURES entries are refused before any HMAC, and malformed entries are skipped.
    #[test]
    fn a_header_of_many_candidates_is_refused_before_any_hmac() {
        let cfg = SignatureConfig::new(b"secret".to_vec());
        let body = b"{}";
        let ts = "1700000000";
        let commas = ",".repeat(5000);
        let err = verify(&cfg, "generic", &headers(ts, &commas), body, 1_700_000_000).unwrap_err();
        assert!(err.contains("at most 4"), "{err}");
        let good = sign(b"secret", ts, body);
        let rotated = format!("sha256=00,{good}");
        verify(&cfg, "generic", &headers(ts, &rotated), body, 1_700_000_000).unwrap();
        let err = verify(&cfg, "generic", &headers(ts, ",,"), body, 1_700_000_000).unwrap_err();
        assert!(err.contains("not sha256=<hex>"), "{err}");
    }

    #[test]
    fn a_source_with_its_own_secret_accepts_only_that_secret() {
        let mut cfg = SignatureConfig::new("shared");
        cfg.by_source
            .insert("jira".into(), vec![b"jira-only".to_vec()]);
        let body = b"{}";
        let shared = sign(b"shared", "1000", body);
        let jira = sign(b"jira-only", "1000", body);
        assert!(verify(&cfg, "jira", &headers("1000", &jira), body, 1000).is_ok());
        let err = verify(&cfg, "jira", &headers("1000", &shared), body, 1000).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        // Jira's secret cannot sign for ServiceNow, which still uses the shared one.
        assert!(verify(&cfg, "servicenow", &headers("1000", &jira), body, 1000).is_err());
        assert!(verify(&cfg, "servicenow", &headers("1000", &shared), body, 1000).is_ok());
    }
}
