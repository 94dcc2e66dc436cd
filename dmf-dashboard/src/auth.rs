//! Who may call what: the bearer token, and when read routes need it too.
//!
//! Mutating routes always need `Authorization: Bearer <token>`. Read routes are open only when
//! the dashboard is bound to a loopback address *and* the request names a loopback host (so a
//! web page on another origin that rebinds its DNS name to 127.0.0.1 still needs the token).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::{ApiError, DashboardError};

/// Where the bearer token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// Given to [`DashboardBuilder::token`](crate::DashboardBuilder::token).
    Given,
    /// Read from `DMF_DASHBOARD_TOKEN`.
    Environment,
    /// Generated at start (and shown once by [`Dashboard::serve`](crate::Dashboard::serve)).
    Generated,
}

/// Whether read routes need the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAccess {
    /// Open to requests that name a loopback host; others need the token.
    Loopback,
    /// Every read needs the token.
    TokenRequired,
}

impl ReadAccess {
    /// The policy for a dashboard bound to `addr`: open reads only on a loopback address.
    ///
    /// ```
    /// use dmf_dashboard::ReadAccess;
    /// assert_eq!(ReadAccess::for_bind("127.0.0.1:8080".parse().unwrap()), ReadAccess::Loopback);
    /// assert_eq!(ReadAccess::for_bind("[::1]:8080".parse().unwrap()), ReadAccess::Loopback);
    /// assert_eq!(ReadAccess::for_bind("0.0.0.0:8080".parse().unwrap()), ReadAccess::TokenRequired);
    /// assert_eq!(ReadAccess::for_bind("192.168.1.10:8080".parse().unwrap()), ReadAccess::TokenRequired);
    /// ```
    pub fn for_bind(addr: SocketAddr) -> Self {
        if is_loopback(addr.ip()) { Self::Loopback } else { Self::TokenRequired }
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// True when the `Host` header names this machine by a loopback name or address.
pub(crate) fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    // `[::1]:8080`, `127.0.0.1:8080`, `localhost:8080`, or without a port.
    let name = if let Some(bracketed) = host.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name.parse::<IpAddr>().is_ok_and(is_loopback)
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Nothing: the page, its assets, health and the API description, which hold no data.
    Public,
    /// The token, unless [`ReadAccess`] lets the request through.
    Read,
    /// Always the token.
    Mutate,
}

/// The token and the read policy, shared by every request.
#[derive(Debug)]
pub(crate) struct Guard {
    token: String,
    pub source: TokenSource,
    pub reads: ReadAccess,
}

impl Guard {
    pub fn new(token: String, source: TokenSource, reads: ReadAccess) -> Result<Self, DashboardError> {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DashboardError::InvalidToken);
        }
        Ok(Self { token, source, reads })
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// `Ok` when a request with these headers may use a route needing `access`.
    pub fn check(&self, access: Access, headers: &HeaderMap) -> Result<(), ApiError> {
        let needs_token = match access {
            Access::Public => false,
            Access::Read => self.reads == ReadAccess::TokenRequired || !host_is_loopback(headers),
            Access::Mutate => true,
        };
        if !needs_token {
            return Ok(());
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this route needs `Authorization: Bearer <token>` (the token printed when the dashboard started, or DMF_DASHBOARD_TOKEN)",
            ));
        };
        let given = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(StatusCode::UNAUTHORIZED, "the Authorization header must be `Bearer <token>`")
            })?;
        if constant_time_eq(given.as_bytes(), self.token.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, "wrong token"))
        }
    }
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(!x));
    }
    diff == 0
}

/// A fresh random token: 32 bytes from the operating system's generator, as hex.
pub(crate) fn random_token() -> Result<String, DashboardError> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| DashboardError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The middleware put on each route by its [`Access`].
pub(crate) async fn require(
    State((guard, access)): State<(Arc<Guard>, Access)>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    guard.check(access, request.headers())?;
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(host: &str, auth: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(auth) = auth {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        }
        headers
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:80", "app.localhost", "127.8.0.1"] {
            assert!(host_is_loopback(&headers(host, None)), "{host}");
        }
        for host in ["example.com", "10.0.0.1:80", "[fe80::1]:80", "localhost.example.com", "127.0.0.1.nip.io"] {
            assert!(!host_is_loopback(&headers(host, None)), "{host}");
        }
    }

    #[test]
    fn reads_are_open_only_on_loopback_and_mutations_never() {
        let open = Guard::new("t0k".into(), TokenSource::Given, ReadAccess::Loopback).unwrap();
        let closed = Guard::new("t0k".into(), TokenSource::Given, ReadAccess::TokenRequired).unwrap();
        let local = headers("127.0.0.1:1", None);
        assert!(open.check(Access::Read, &local).is_ok());
        assert!(open.check(Access::Public, &local).is_ok());
        assert_eq!(open.check(Access::Mutate, &local).unwrap_err().status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            open.check(Access::Read, &headers("evil.example", None)).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(closed.check(Access::Read, &local).unwrap_err().status, StatusCode::UNAUTHORIZED);
        assert!(closed.check(Access::Public, &local).is_ok());
        assert!(closed.check(Access::Read, &headers("127.0.0.1:1", Some("Bearer t0k"))).is_ok());
        assert_eq!(
            closed.check(Access::Mutate, &headers("127.0.0.1:1", Some("Bearer t0kk"))).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            closed.check(Access::Mutate, &headers("127.0.0.1:1", Some("Basic dDBr"))).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn tokens_are_checked_and_generated() {
        assert!(Guard::new(String::new(), TokenSource::Given, ReadAccess::Loopback).is_err());
        assert!(Guard::new("a b".into(), TokenSource::Given, ReadAccess::Loopback).is_err());
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
