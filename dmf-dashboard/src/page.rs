//! The live page: plain HTML, CSS and JavaScript embedded in the binary. It holds no data
//! itself; its script reads the API and the event stream.

use axum::extract::OriginalUri;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("../assets/index.html");
const STYLESHEET: &str = include_str!("../assets/dashboard.css");
const SCRIPT: &str = include_str!("../assets/dashboard.js");

/// Scripts and styles only from this origin, no inline code, no framing, requests only back
/// to this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'self'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: impl IntoResponse, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// The page's `<base href>`: the path it was asked for, ending in `/`, so that its relative
/// links (`assets/…`, `api/…`) work wherever the router is nested (`/`, `/dmf`, `/dmf/`).
fn base_of(path: &str) -> String {
    let mut base: String = path
        .chars()
        .filter(|c| !matches!(c, '"' | '\'' | '<' | '>' | '&' | '\\') && !c.is_whitespace() && !c.is_control())
        .collect();
    if !base.starts_with('/') || base.starts_with("//") {
        base = format!("/{}", base.trim_start_matches('/'));
    }
    if !base.ends_with('/') {
        base.push('/');
    }
    base
}

pub(crate) async fn index(OriginalUri(uri): OriginalUri) -> Response {
    let page = INDEX.replace("{{BASE}}", &base_of(uri.path()));
    let mut response = asset(page, "text/html; charset=utf-8");
    response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    response
}

pub(crate) async fn stylesheet() -> Response {
    asset(STYLESHEET, "text/css; charset=utf-8")
}

pub(crate) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_ends_in_a_slash_and_stays_on_this_origin() {
        assert_eq!(base_of("/"), "/");
        assert_eq!(base_of("/dmf"), "/dmf/");
        assert_eq!(base_of("/dmf/"), "/dmf/");
        assert_eq!(base_of("//evil.example/x"), "/evil.example/x/");
        assert_eq!(base_of("/a\"><script>"), "/ascript/");
    }
}
