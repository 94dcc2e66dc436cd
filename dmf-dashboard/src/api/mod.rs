//! The HTTP routes, built from one table ([`routes`]) that also drives the access checks and
//! that the OpenAPI document is tested against.

mod events;
mod migrations;
mod runs;
mod system;
mod views;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use axum::{Router, body::Bytes};
use dmf_core::{MigrationName, RunId};
use serde::de::DeserializeOwned;

use crate::auth::{self, Access};
use crate::dashboard::Dashboard;
use crate::error::ApiError;
use crate::page;

/// The largest request body accepted (the bodies are small JSON objects).
pub(crate) const BODY_LIMIT: usize = 16 * 1024;

/// One route: method, path (axum syntax, as in the OpenAPI document) and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

fn spec(method: Method, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec { method, path, access }
}

/// Every route the router serves, and nothing else.
pub(crate) fn routes() -> Vec<(RouteSpec, MethodRouter<Dashboard>)> {
    use Access::{Mutate, Public, Read};
    vec![
        (spec(Method::GET, "/", Public), get(page::index)),
        (spec(Method::GET, "/assets/dashboard.css", Public), get(page::stylesheet)),
        (spec(Method::GET, "/assets/dashboard.js", Public), get(page::script)),
        (spec(Method::GET, "/healthz", Public), get(system::healthz)),
        (spec(Method::GET, "/api/openapi.json", Public), get(system::openapi)),
        (spec(Method::GET, "/metrics", Read), get(system::metrics)),
        (spec(Method::GET, "/api/info", Read), get(system::info)),
        (spec(Method::GET, "/api/migrations", Read), get(migrations::list)),
        (spec(Method::POST, "/api/migrations/{name}/rollback", Mutate), post(migrations::rollback)),
        (spec(Method::GET, "/api/runs", Read), get(runs::list)),
        (spec(Method::POST, "/api/runs", Mutate), post(runs::start)),
        (spec(Method::GET, "/api/runs/{id}", Read), get(runs::detail)),
        (spec(Method::POST, "/api/runs/{id}/cancel", Mutate), post(runs::cancel)),
        (spec(Method::GET, "/api/runs/{id}/rejects", Read), get(runs::rejects)),
        (spec(Method::GET, "/api/events", Read), get(events::stream)),
    ]
}

pub(crate) fn router(dashboard: Dashboard) -> Router {
    let guard = Arc::clone(&dashboard.inner.guard);
    let mut router = Router::new();
    for (route, handler) in routes() {
        let check = middleware::from_fn_with_state((Arc::clone(&guard), route.access), auth::require);
        router = router.route(route.path, handler.route_layer(check));
    }
    router
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::map_response(common_headers))
        .with_state(dashboard)
}

async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}; see /api/openapi.json", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}; see /api/openapi.json", uri.path()),
    )
}

/// Headers on every answer: no sniffing, no framing, no referrer; API answers are not cached.
async fn common_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A JSON body: empty means the default value; otherwise it must be JSON of the right shape.
/// Syntax errors answer 400, shape errors (unknown field, wrong type) 422, a body over
/// [`BODY_LIMIT`] 413, a non-JSON content type 415.
pub(crate) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, format!("the request body is larger than {BODY_LIMIT} bytes"))
            } else {
                ApiError::new(status, rejection.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        if let Some(content_type) = content_type {
            let is_json = content_type
                .to_str()
                .ok()
                .and_then(|ct| ct.split(';').next())
                .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
            if !is_json {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send the request body as `Content-Type: application/json`",
                ));
            }
        }
        serde_json::from_slice(&bytes).map(Self).map_err(|error| match error.classify() {
            serde_json::error::Category::Data => {
                ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, format!("invalid request body: {error}"))
            }
            _ => ApiError::bad_request(format!("the request body is not valid JSON: {error}")),
        })
    }
}

/// The `{id}` of a run route.
pub(crate) struct RunIdParam(pub RunId);

impl<S: Send + Sync> FromRequestParts<S> for RunIdParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
        text.parse::<i64>()
            .map(|id| Self(RunId(id)))
            .map_err(|_| ApiError::bad_request(format!("`{text}` is not a run id (a whole number)")))
    }
}

/// The `{name}` of a migration route.
pub(crate) struct MigrationParam(pub MigrationName);

impl<S: Send + Sync> FromRequestParts<S> for MigrationParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
        Ok(Self(MigrationName::new(name)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The OpenAPI document lists exactly the routes of [`routes`], with the same access.
    #[test]
    fn openapi_lists_exactly_the_routes_served() {
        let doc: serde_json::Value = serde_json::from_str(system::OPENAPI).unwrap();
        let mut documented = BTreeSet::new();
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let secured = operation.get("security").map(|s| s.as_array().unwrap().is_empty());
                documented.insert((method.to_uppercase(), path.clone(), secured));
            }
        }
        let served: BTreeSet<_> = routes()
            .into_iter()
            .map(|(route, _)| {
                // Public routes declare `security: []`; the others inherit the global scheme.
                let secured = (route.access == Access::Public).then_some(true);
                (route.method.to_string(), route.path.to_owned(), secured)
            })
            .collect();
        assert_eq!(documented, served);
    }

    #[test]
    fn no_route_is_listed_twice() {
        let paths: BTreeSet<_> = routes().into_iter().map(|(r, _)| (r.method, r.path)).collect();
        assert_eq!(paths.len(), routes().len(), "no route is listed twice");
    }
}
