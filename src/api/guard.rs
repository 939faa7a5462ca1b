//! What every answer carries and who may ask: the security headers put on every response (JSON,
//! CSV, metrics, errors, the page), and the `Host` allow-list that keeps a DNS-rebinding page from
//! reading `/v1` off a port with no token. It never looks at the body, and never checks the `Host`
//! of the probes and `/metrics` (they expose nothing about accounts, and kubelet sends the pod's IP).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// The page's own scripts, styles and API only: no inline script or style, no framing, no
/// plugins; `data:` images for the page's empty favicon. For a JSON or CSV answer opened in a tab
/// it is as strict, which does no harm.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers every answer carries.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    // For browsers that predate CSP's frame-ancestors.
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

/// Paths answered whatever the `Host`: Kubernetes probes send `Host: <pod IP>:<port>`, and
/// Prometheus scrapes by address; none of them says anything about an account.
pub const HOST_EXEMPT_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Adds [`SECURITY_HEADERS`] to an answer (replacing any the handler set).
pub async fn security_headers(mut res: Response) -> Response {
    let headers = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    res
}

/// The `Host` values the port answers to when no token is set (`http.allowed_hosts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    /// Lower-case hosts, each `name`, `a.b.c.d` or `[v6]`, with or without a `:port`.
    entries: Vec<String>,
    /// The bound port: an entry without a port also matches `entry:port`.
    port: u16,
}

impl AllowedHosts {
    /// `configured` (`http.allowed_hosts`), or when that is empty the bound address, `localhost`,
    /// `127.0.0.1` and `[::1]`; each entry without a port matches with or without the bound port.
    pub fn new(configured: &[String], bound: SocketAddr) -> AllowedHosts {
        let mut entries: Vec<String> = if configured.is_empty() {
            let ip = match bound {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            };
            [ip.as_str(), "localhost", "127.0.0.1", "[::1]"].map(String::from).to_vec()
        } else {
            configured.iter().map(|h| h.trim().to_ascii_lowercase()).collect()
        };
        entries.sort();
        entries.dedup();
        AllowedHosts { entries, port: bound.port() }
    }

    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Whether a `Host` value (case-insensitive) is one of the entries.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let bound_port = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>() == Ok(self.port);
        self.entries.iter().any(|e| {
            *e == host
                || (!has_port(e) && host.strip_prefix(e.as_str()).and_then(|rest| rest.strip_prefix(':')).is_some_and(bound_port))
        })
    }
}

/// Whether a host entry (`name`, `a.b.c.d`, `[v6]`) ends with a `:port`.
fn has_port(entry: &str) -> bool {
    match entry.rfind(']') {
        Some(i) => entry[i..].contains(':'),
        None => entry.contains(':'),
    }
}

/// Answers 421 to a request whose `Host` (or absolute-form authority) is not allowed, except on
/// [`HOST_EXEMPT_PATHS`]. Installed only when no token is set: with a token, a rebinding page
/// cannot read `/v1` anyway.
pub async fn check_host(State(hosts): State<Arc<AllowedHosts>>, req: Request, next: Next) -> Response {
    if HOST_EXEMPT_PATHS.contains(&req.uri().path()) || request_host(&req).is_some_and(|h| hosts.allows(h)) {
        return next.run(req).await;
    }
    super::error(
        StatusCode::MISDIRECTED_REQUEST,
        "this port does not answer for the Host the request names; see http.allowed_hosts",
    )
}

/// The host a request names: its absolute-form authority if it has one (which then overrides
/// `Host`, RFC 9112 §3.2.2), else its one `Host` header. `None` for none, several, or not text.
fn request_host(req: &Request) -> Option<&str> {
    if let Some(a) = req.uri().authority() {
        return Some(a.as_str());
    }
    let mut values = req.headers().get_all(header::HOST).iter();
    let host = values.next()?;
    if values.next().is_some() {
        return None;
    }
    host.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(configured: &[&str], bound: &str) -> AllowedHosts {
        AllowedHosts::new(&configured.iter().map(|s| s.to_string()).collect::<Vec<_>>(), bound.parse().unwrap())
    }

    #[test]
    fn by_default_the_bound_address_and_loopback_names_are_allowed_with_or_without_the_port() {
        let h = hosts(&[], "127.0.0.1:9460");
        for ok in ["127.0.0.1:9460", "127.0.0.1", "localhost", "LOCALHOST:9460", "[::1]", "[::1]:9460"] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:9460", "localhost:9461", "127.0.0.1:80", "localhost.evil.example", "", "localhost:", "localhost:+9460", "127.0.0.1:9460x"] {
            assert!(!h.allows(bad), "{bad}");
        }
        let v6 = hosts(&[], "[::1]:8080");
        assert!(v6.allows("[::1]:8080") && v6.allows("localhost:8080") && !v6.allows("[::1]:9460"));
        let any = hosts(&[], "10.1.2.3:9460");
        assert!(any.allows("10.1.2.3:9460") && any.allows("10.1.2.3") && any.allows("localhost"));
    }

    #[test]
    fn configured_hosts_replace_the_defaults() {
        let h = hosts(&["kizashi.internal", "Proxy.Example:8443"], "0.0.0.0:9460");
        for ok in ["kizashi.internal", "kizashi.internal:9460", "proxy.example:8443", "PROXY.EXAMPLE:8443"] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in ["localhost", "127.0.0.1:9460", "kizashi.internal:80", "proxy.example", "proxy.example:9460", "proxy.example:8443:9460"] {
            assert!(!h.allows(bad), "{bad}");
        }
    }
}
