//! The crate's error type, and how errors become HTTP answers (`{"error": "..."}`).

use std::net::SocketAddr;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dmf_core::{MigrationName, RunId};

use crate::redact::redact_secrets;

/// Everything that can go wrong in dmf-dashboard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    /// The dashboard was built outside a Tokio runtime (it watches progress in a task).
    #[error("the dashboard must be built inside a Tokio runtime")]
    NoRuntime,
    /// The token is empty or cannot travel in an HTTP header.
    #[error("the dashboard token must be non-empty visible ASCII without spaces")]
    InvalidToken,
    /// No random token could be generated.
    #[error("cannot generate a random token: {0}")]
    Random(String),
    /// A metrics recorder was already installed by someone else.
    #[error("cannot install the Prometheus recorder: {0}")]
    MetricsRecorder(String),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped on an I/O error.
    #[error("the dashboard server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// A run names a migration that is not registered.
    #[error("no migration named `{0}` is registered")]
    UnknownMigration(MigrationName),
    /// A run names no migration at all.
    #[error("`migrations` is empty: name at least one migration, or leave it out to run them all")]
    NothingSelected,
    /// A run of this process is still going; runs of the same migrations must not overlap.
    #[error("run {0} is in progress in this process: wait for it to finish or cancel it")]
    RunInProgress(RunId),
    /// The run could not start (run store unreachable, …).
    #[error("the run could not start")]
    Start(#[source] dmf_core::Error),
    /// A rollback was refused or failed.
    #[error("the rollback failed")]
    Rollback(#[source] dmf_core::Error),
    /// The task running the run panicked or was aborted.
    #[error("the run's task ended abnormally: {0}")]
    RunAborted(String),
    /// The run store could not be read.
    #[error("the run store could not be read")]
    Store(#[source] dmf_core::Error),
}

/// An HTTP error answer: a status and a message, sent as `{"error": message}` with secrets
/// masked.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// A dmf-core error: unknown names are 404, refusals 409, a transient failure 503, the
    /// rest 500; the message carries the whole chain.
    pub fn core(context: &str, error: &dmf_core::Error) -> Self {
        let status = match error {
            dmf_core::Error::UnknownMigration(_) => StatusCode::NOT_FOUND,
            dmf_core::Error::RollbackRefused(_) => StatusCode::CONFLICT,
            e if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, format!("{context}: {}", error.chain()))
    }
}

impl From<DashboardError> for ApiError {
    fn from(error: DashboardError) -> Self {
        match &error {
            DashboardError::UnknownMigration(_) => Self::not_found(error.to_string()),
            DashboardError::NothingSelected => Self::bad_request(error.to_string()),
            DashboardError::RunInProgress(_) => Self::conflict(error.to_string()),
            DashboardError::Start(source) => Self::core("the run could not start", source),
            DashboardError::Rollback(source) => Self::core("the rollback failed", source),
            DashboardError::Store(source) => Self::core("the run store could not be read", source),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, dmf_core::error_chain(&error)),
        }
    }
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = redact_secrets(&self.message);
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), error = %message, "dashboard request failed");
        }
        let mut response = (self.status, Json(ErrorBody { error: &message })).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
