//! Health, the API description, what the page shows in its header, and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::{ReadAccess, TokenSource};
use crate::dashboard::Dashboard;
use crate::error::ApiError;

/// The OpenAPI 3.1 document, kept by hand next to the route table (a test compares them).
pub(crate) const OPENAPI: &str = include_str!("../../assets/openapi.json");

pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

pub(crate) async fn openapi() -> Response {
    let mut response = OPENAPI.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[derive(Serialize)]
struct DatabaseView<'a> {
    role: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
pub(crate) struct Info<'a> {
    title: &'a str,
    version: &'static str,
    databases: Vec<DatabaseView<'a>>,
    /// `loopback` (reads open to loopback requests) or `token`.
    read_access: &'static str,
    token_source: &'static str,
    metrics: bool,
    migrations: usize,
    /// Progress events this dashboard missed because it fell behind (live figures may lag).
    events_missed: u64,
}

pub(crate) async fn info(State(dashboard): State<Dashboard>) -> Response {
    let inner = &dashboard.inner;
    Json(Info {
        title: &inner.title,
        version: env!("CARGO_PKG_VERSION"),
        databases: inner.databases.iter().map(|(role, name)| DatabaseView { role, name }).collect(),
        read_access: match inner.guard.reads {
            ReadAccess::Loopback => "loopback",
            ReadAccess::TokenRequired => "token",
        },
        token_source: match inner.guard.source {
            TokenSource::Given => "given",
            TokenSource::Environment => "environment",
            TokenSource::Generated => "generated",
        },
        metrics: inner.metrics.is_some(),
        migrations: inner.orchestrator.plan().len(),
        events_missed: inner.live.missed(),
    })
    .into_response()
}

pub(crate) async fn metrics(State(dashboard): State<Dashboard>) -> Result<Response, ApiError> {
    let Some(handle) = &dashboard.inner.metrics else {
        return Err(ApiError::not_found(
            "metrics are off: build the dashboard with `.prometheus()` or `.prometheus_handle(..)`",
        ));
    };
    // Summaries and histograms are drained here; no background task is needed.
    handle.run_upkeep();
    let mut response = (StatusCode::OK, handle.render()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(response)
}
