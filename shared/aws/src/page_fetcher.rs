//! [`PageFetcher`] on reqwest (rustls): fetches an app's access URL to read the headers that
//! decide whether the agent workspace can iframe it.
//!
//! Safe to point at arbitrary URLs: redirects are followed by hand up to a bound (http/https
//! only), the whole fetch has a timeout, at most `max_body_bytes` of the body are read, no
//! cookies are kept, and no credentials are sent (a URL carrying a user name or password is
//! refused rather than having them stripped silently). Unless the limits allow private networks,
//! only publicly routable addresses are contacted — checked on the addresses the name resolves
//! to (and on IP literals), for every hop of a redirect chain — so a submitted URL cannot make
//! the API function reach loopback services such as Lambda's Runtime API (127.0.0.1:9001), a
//! metadata service (169.254.169.254) or anything in a private network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
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
    /// Contact loopback, private, link-local and other non-public addresses too. Off for the
    /// API (a submitted URL must not reach inside); on for the operator's own CLI, whose
    /// staging apps may well live on a private network.
    pub allow_private_networks: bool,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            max_redirects: 5,
            timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            allow_private_networks: false,
        }
    }
}

/// Whether `ip` is publicly routable: not loopback, private (RFC 1918, unique local),
/// link-local, shared (CGNAT), unspecified, broadcast, multicast, documentation, benchmarking
/// or reserved. IPv4-mapped and -compatible IPv6 addresses are judged as their IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking (RFC 2544)
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let compatible = ip.segments()[..6].iter().all(|s| *s == 0);
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || compatible // ::a.b.c.d (deprecated IPv4-compatible; also covers :: and ::1)
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // deprecated site-local fec0::/10 (still routed inside some sites)
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (first == 0x2001 && ip.segments()[1] == 0x0000) // Teredo 2001::/32 tunnels to IPv4
        || first == 0x2002 // 6to4 2002::/16 embeds (and reaches) an IPv4 address
        || (first == 0x0100 && ip.segments()[1..4].iter().all(|s| *s == 0)) // discard 100::/64
        || first == 0x0064) // NAT64 64:ff9b::/96 and local-use 64:ff9b:1::/48 reach IPv4
}

/// Resolves with the system resolver and keeps only public addresses; a name with none left
/// fails with the reason, so reqwest never connects anywhere else.
#[derive(Debug)]
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                all.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() && !all.is_empty() {
                // The addresses are not echoed: an answer must not map the internal network.
                return Err(format!(
                    "{host} resolves only to non-public addresses; the preflight fetches public \
                     pages only"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
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
        if !limits.allow_private_networks {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        if let Some(roots) = extra_roots {
            builder = builder.tls_certs_merge(roots);
        }
        let client = builder
            .build()
            .map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { client, limits })
    }

    fn check(&self, url: Url) -> Result<Url, FetchError> {
        let url = check_url(url)?;
        if !self.limits.allow_private_networks {
            // IP literals never reach the resolver.
            let literal = match url.host() {
                Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
                Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
                _ => None,
            };
            if let Some(ip) = literal.filter(|ip| !is_public(*ip)) {
                return Err(fail(format!(
                    "{url}: {ip} is not a public address; the preflight fetches public pages only"
                )));
            }
        }
        Ok(url)
    }

    async fn fetch(&self, url: &str) -> Result<FetchedHeaders, FetchError> {
        let mut current = self
            .check(Url::parse(url).map_err(|e| fail(format!("{url} is not a valid URL: {e}")))?)?;
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
                    current = self.check(next)?;
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
