//! # dmf-dashboard
//!
//! Web monitoring for DMF: an HTTP API and a live page over an
//! [`Orchestrator`](dmf_core::Orchestrator)'s run store and progress events. Watch runs (this
//! process's live, and those other processes recorded in the same control tables), start,
//! cancel and roll back migrations, page through the reject quarantine, and scrape Prometheus
//! metrics.
//!
//! - [`Dashboard`] (built by [`DashboardBuilder`]) gives an axum [`Router`](axum::Router) to
//!   nest in your own service, or serves itself with [`Dashboard::serve`] until Ctrl-C.
//! - The API is JSON; `GET /api/openapi.json` describes every route. `GET /api/events` streams
//!   [`ProgressEvent`](dmf_core::ProgressEvent)s as Server-Sent Events, in order.
//! - Security: binds `127.0.0.1` by default. Every mutating route needs
//!   `Authorization: Bearer <token>` (the token comes from [`DashboardBuilder::token`],
//!   `DMF_DASHBOARD_TOKEN`, or is generated); read routes need it too unless the dashboard is
//!   bound to a loopback address and asked for by a loopback host name ([`ReadAccess`]).
//!   Connection strings and passwords are masked in every text the dashboard sends.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the live page (with `GET /assets/dashboard.js` and `GET /assets/dashboard.css`) |
//! | `GET /healthz` | liveness |
//! | `GET /api/openapi.json` | the OpenAPI 3.1 description of all of these |
//! | `GET /metrics` | Prometheus text (with [`DashboardBuilder::prometheus`]) |
//! | `GET /api/info` | databases shown, access policy |
//! | `GET /api/migrations` | each registered migration and its latest record |
//! | `POST /api/migrations/{name}/rollback` | rolls back the latest run of one migration |
//! | `GET /api/runs`, `GET /api/runs/{id}` | run history, per-migration records, rejects summary |
//! | `POST /api/runs` | starts a run in the background, answers its id at once |
//! | `POST /api/runs/{id}/cancel` | cancels a run this dashboard started |
//! | `GET /api/runs/{id}/rejects` | a page of a run's rejects |
//! | `GET /api/events` | live progress (Server-Sent Events) |
//!
//! ```no_run
//! # async fn demo(orchestrator: dmf_core::Orchestrator) -> Result<(), dmf_dashboard::DashboardError> {
//! use std::sync::Arc;
//! use dmf_dashboard::Dashboard;
//!
//! let orchestrator = Arc::new(orchestrator);
//! // Build before the run starts, so the dashboard sees its first events.
//! let dashboard = Dashboard::builder(Arc::clone(&orchestrator))
//!     .bind(([127, 0, 0, 1], 8080).into())
//!     .prometheus()
//!     .build()?;
//! // Nest it in your own service (the page is then at `/dmf`)…
//! let app: axum::Router = axum::Router::new().nest("/dmf", dashboard.router());
//! # let _ = app;
//! // …or let it serve itself, during the run and after it, until Ctrl-C.
//! let serving = tokio::spawn(dashboard.clone().serve());
//! orchestrator.run(dmf_core::RunRequest::all()).await.ok();
//! serving.await.ok();
//! # Ok(()) }
//! ```
//!
//! The demo (`cargo run -p dmf-dashboard --example dashboard_demo`) runs a SQLite migration
//! slowly enough to watch; `scripts/browser-test.sh` checks its page in headless Chromium.

mod api;
mod auth;
mod control;
mod dashboard;
mod error;
mod live;
mod page;
mod redact;
mod server;

pub use auth::{ReadAccess, TokenSource};
pub use control::{RunOptions, StartedRun};
pub use dashboard::{DEFAULT_BIND, Dashboard, DashboardBuilder, install_prometheus_recorder};
pub use error::DashboardError;
pub use redact::redact_secrets;
pub use server::Server;

/// The environment variable the bearer token is read from when none is given to the builder.
pub const TOKEN_ENV: &str = "DMF_DASHBOARD_TOKEN";
