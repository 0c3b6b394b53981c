//! Who may do what over TCP. The Unix socket needs none of this: its file
//! mode is the authentication.
//!
//! Every request needs the key except `/health` and, when the setting opens
//! them ([`pmdaemon_core::web::WebSettings::open_reads`]), the read-only
//! listings named in [`is_open_read`]: an allow-list, so that a route added
//! later is guarded until someone decides otherwise. A detail read without
//! the key has its whole environment hidden ([`HideEnv`]). The dashboard's
//! static files are open: they hold no data, and the page asks for the
//! key. `GET /ws` without a key header is let through marked
//! [`KeyRequired`]: its first message must be the key.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pmdaemon_core::web::{HEALTH_ROUTE, OPENAPI_ROUTE, WS_ROUTE};

use crate::api::{ApiError, HideEnv};

/// The key and what it guards.
pub struct Guard {
    key: String,
    open_reads: bool,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("key", &"[redacted]")
            .field("open_reads", &self.open_reads)
            .finish()
    }
}

impl Guard {
    /// A guard for `key`; `open_reads` serves read-only listings without it.
    pub fn new(key: String, open_reads: bool) -> Self {
        Self { key, open_reads }
    }
}

/// Marks a `GET /ws` that came without a key header: the socket must send
/// the key as its first message.
#[derive(Clone)]
pub struct KeyRequired(Arc<Guard>);

impl std::fmt::Debug for KeyRequired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRequired")
    }
}

impl KeyRequired {
    /// Whether `key` is the door's key.
    pub fn accepts(&self, key: &str) -> bool {
        same_key(key.as_bytes(), self.0.key.as_bytes())
    }
}

/// The middleware of the TCP door.
pub async fn check(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == HEALTH_ROUTE || crate::web::dashboard::is_asset(path) {
        return next.run(request).await;
    }
    let open = guard.open_reads
        && (request.method() == Method::GET || request.method() == Method::HEAD)
        && is_open_read(path);
    match presented_key(request.headers()) {
        Some(key) if same_key(key.as_bytes(), guard.key.as_bytes()) => next.run(request).await,
        Some(_) => unauthorized("wrong API key"),
        None if path == WS_ROUTE => {
            request
                .extensions_mut()
                .insert(KeyRequired(Arc::clone(&guard)));
            next.run(request).await
        }
        None if open => {
            request.extensions_mut().insert(HideEnv);
            next.run(request).await
        }
        None => unauthorized(
            "this request needs the API key: send `Authorization: Bearer KEY` or `X-API-Key: KEY` (`pmdaemon web --status` shows where the key is)",
        ),
    }
}

/// The read-only listings that may be open: the process table, one
/// target's detail (environment hidden), the host, the version, metrics.
fn is_open_read(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(
        segments.as_slice(),
        ["api", "processes"] | ["api", "system"] | ["api", "version"] | ["metrics"]
    ) || path == OPENAPI_ROUTE
        || matches!(segments.as_slice(), ["api", "processes", target] if !target.is_empty())
}

/// The key of `Authorization: Bearer KEY` or `X-API-Key: KEY`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, key) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        });
    bearer.or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    })
}

/// Compares in time that depends on the lengths only, never on where the
/// first difference is.
fn same_key(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    let difference = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    std::hint::black_box(difference) == 0
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listings_are_open_reads() {
        for open in [
            "/api/processes",
            "/api/processes/web-app-1",
            "/api/system",
            "/api/version",
            "/metrics",
        ] {
            assert!(is_open_read(open), "{open}");
        }
        for guarded in [
            "/api/logs",
            "/api/processes/web/logs",
            "/api/processes/",
            "/api/flush",
            "/api/daemon/kill",
            "/api/web",
            "/anything",
        ] {
            assert!(!is_open_read(guarded), "{guarded}");
        }
    }

    #[test]
    fn keys_come_from_either_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  k1 "),
        );
        assert_eq!(presented_key(&headers), Some("k1"));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("k2"));
        assert_eq!(presented_key(&headers), Some("k2"));
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(presented_key(&headers), None);
    }

    #[test]
    fn keys_compare_exactly() {
        assert!(same_key(b"abc", b"abc"));
        assert!(!same_key(b"abd", b"abc"));
        assert!(!same_key(b"ab", b"abc"));
        assert!(!same_key(b"", b"abc"));
    }
}
