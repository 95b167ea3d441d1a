//! [`PageFetcher`] on reqwest (rustls): fetches an app's access URL to read the headers that
//! decide whether the agent workspace can iframe it.
//!
//! Safe to point at arbitrary URLs: redirects are followed by hand up to a bound (http/https
//! only), the whole fetch has a timeout, at most `max_body_bytes` of the body are read, no
//! cookies are kept, and no credentials are sent (a URL carrying a user name or password is
//! refused rather than having them stripped silently).

use std::time::Duration;

use async_trait::async_trait;
use onboard_core::preflight::{FetchError, FetchedHeaders, PageFetcher};
use reqwest::header::{HeaderValue, ACCEPT, LOCATION, USER_AGENT};
use url::Url;

/// Bounds of one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Redirects followed before giving up.
    pub max_redirects: usize,
    /// For the whole fetch, redirects included.
    pub timeout: Duration,
    /// Body bytes read (and discarded) from the final response.
    pub max_body_bytes: usize,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            max_redirects: 5,
            timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Fetches pages with reqwest.
#[derive(Debug, Clone)]
pub struct ReqwestPageFetcher {
    client: reqwest::Client,
    limits: FetchLimits,
}

fn fail(reason: impl Into<String>) -> FetchError {
    FetchError {
        reason: reason.into(),
    }
}

impl ReqwestPageFetcher {
    pub fn new(limits: FetchLimits) -> Result<Self, FetchError> {
        Self::build(limits, None)
    }

    /// A fetcher that also trusts `root_pem` (PEM certificates) besides the system's roots.
    /// For tests against a local HTTPS server with a self-signed certificate; production uses
    /// [`ReqwestPageFetcher::new`].
    pub fn with_extra_roots(limits: FetchLimits, root_pem: &[u8]) -> Result<Self, FetchError> {
        let roots = reqwest::Certificate::from_pem_bundle(root_pem)
            .map_err(|e| fail(format!("cannot read the extra root certificates: {e}")))?;
        if roots.is_empty() {
            return Err(fail("no PEM certificate found among the extra roots"));
        }
        Self::build(limits, Some(roots))
    }

    fn build(
        limits: FetchLimits,
        extra_roots: Option<Vec<reqwest::Certificate>>,
    ) -> Result<Self, FetchError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(limits.timeout)
            .connect_timeout(limits.timeout)
            .no_proxy();
        if let Some(roots) = extra_roots {
            builder = builder.tls_certs_merge(roots);
        }
        let client = builder
            .build()
            .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client, limits })
    }

    async fn fetch(&self, url: &str) -> Result<FetchedHeaders, FetchError> {
        let mut current = check_url(
            Url::parse(url).map_err(|e| fail(format!("{url} is not a valid URL: {e}")))?,
        )?;
        let mut redirects = Vec::new();
        loop {
            let mut response = self
                .client
                .get(current.clone())
                .header(
                    USER_AGENT,
                    HeaderValue::from_static("connect-onboarding-preflight/1"),
                )
                .header(ACCEPT, HeaderValue::from_static("text/html,*/*;q=0.8"))
                .send()
                .await
                .map_err(|e| fail(describe(&current, &e)))?;
            let status = response.status();
            if status.is_redirection() {
                if let Some(location) = response.headers().get(LOCATION) {
                    if redirects.len() >= self.limits.max_redirects {
                        return Err(fail(format!(
                            "more than {} redirects (last: {current})",
                            self.limits.max_redirects
                        )));
                    }
                    let location = location.to_str().map_err(|_| {
                        fail(format!("{current} redirects to an unreadable Location"))
                    })?;
                    let next = current.join(location).map_err(|e| {
                        fail(format!(
                            "{current} redirects to an invalid URL {location:?}: {e}"
                        ))
                    })?;
                    current = check_url(next)?;
                    redirects.push(current.to_string());
                    continue;
                }
            }
            let headers = response
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
            // Read at most the size limit, so a huge or endless body neither hangs nor fills
            // memory; the headers are all we need.
            let mut read = 0usize;
            while read < self.limits.max_body_bytes {
                match response.chunk().await {
                    Ok(Some(chunk)) => read += chunk.len(),
                    Ok(None) | Err(_) => break,
                }
            }
            return Ok(FetchedHeaders {
                final_url: current.to_string(),
                status: status.as_u16(),
                headers,
                redirects,
            });
        }
    }
}

fn check_url(url: Url) -> Result<Url, FetchError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail(format!("{url}: only http and https URLs are fetched")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(fail(
            "the URL carries credentials (user:password@); refusing to send them".to_owned(),
        ));
    }
    Ok(url)
}

fn describe(url: &Url, e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    let mut msg = format!("GET {url} {what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

#[async_trait]
impl PageFetcher for ReqwestPageFetcher {
    async fn fetch_headers(&self, url: &str) -> Result<FetchedHeaders, FetchError> {
        // The client timeout is per request; bound the redirect chain as a whole too.
        let total = self.limits.timeout.saturating_mul(2);
        tokio::time::timeout(total, self.fetch(url))
            .await
            .map_err(|_| fail(format!("fetching {url} took longer than {total:?}")))?
    }
}
