//! [`Dashboard`] and its builder: the orchestrator it watches, the token, the bind address
//! and the metrics recorder.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use dmf_core::progress::metrics as names;
use dmf_core::{CancellationToken, Orchestrator};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::auth::{Guard, ReadAccess, TokenSource, random_token};
use crate::control::{Control, RunOptions, StartedRun};
use crate::error::DashboardError;
use crate::live::Live;
use crate::redact::redact_secrets;
use crate::server::Server;

/// The address [`Dashboard::serve`] binds unless told otherwise: loopback only.
pub const DEFAULT_BIND: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Builds a [`Dashboard`]; see [`Dashboard::builder`].
#[must_use = "call `build()` to get the dashboard"]
pub struct DashboardBuilder {
    orchestrator: Arc<Orchestrator>,
    bind: SocketAddr,
    token: Option<String>,
    token_for_reads: bool,
    metrics: Metrics,
    databases: Vec<(String, String)>,
    title: String,
}

enum Metrics {
    Off,
    Install,
    Handle(PrometheusHandle),
}

impl DashboardBuilder {
    /// The address [`Dashboard::serve`] listens on (default `127.0.0.1:8080`). It also decides
    /// whether read routes need the token ([`ReadAccess::for_bind`]), so when you nest the
    /// router in your own server, give the address that server listens on.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The bearer token of the mutating routes (default: `DMF_DASHBOARD_TOKEN`, else a random
    /// one).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Requires the token on read routes too, whatever the bind address (for a dashboard
    /// behind a reverse proxy on the same machine, say).
    pub fn require_token_for_reads(mut self) -> Self {
        self.token_for_reads = true;
        self
    }

    /// Serves `GET /metrics` from the process-wide Prometheus recorder, installing it if no
    /// dashboard did yet ([`install_prometheus_recorder`]). Without this (or
    /// [`prometheus_handle`](Self::prometheus_handle)) `/metrics` answers 404.
    pub fn prometheus(mut self) -> Self {
        self.metrics = Metrics::Install;
        self
    }

    /// Serves `GET /metrics` from a recorder you installed yourself.
    pub fn prometheus_handle(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Metrics::Handle(handle);
        self
    }

    /// Shows a database on the page, as `role: display name` (for example
    /// `.database("target", db.display_name())`). Passwords in the name are masked anyway.
    pub fn database(mut self, role: impl Into<String>, display_name: impl Into<String>) -> Self {
        let name: String = display_name.into();
        self.databases.push((role.into(), redact_secrets(&name).into_owned()));
        self
    }

    /// The page's title (default `DMF dashboard`).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Checks the token, installs the recorder when asked, and starts watching progress events.
    /// Must be called inside a Tokio runtime, before the runs it should show live start.
    pub fn build(self) -> Result<Dashboard, DashboardError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(DashboardError::NoRuntime);
        }
        let env = std::env::var(crate::TOKEN_ENV).ok().filter(|t| !t.is_empty());
        let (token, source) = match (self.token, env) {
            (Some(token), _) => (token, TokenSource::Given),
            (None, Some(token)) => (token, TokenSource::Environment),
            (None, None) => (random_token()?, TokenSource::Generated),
        };
        let reads = if self.token_for_reads { ReadAccess::TokenRequired } else { ReadAccess::for_bind(self.bind) };
        let guard = Arc::new(Guard::new(token, source, reads)?);
        let metrics = match self.metrics {
            Metrics::Off => None,
            Metrics::Install => Some(install_prometheus_recorder()?),
            Metrics::Handle(handle) => Some(handle),
        };
        let live = Arc::new(Live::default());
        let tracker = CancellationToken::new();
        live.watch(self.orchestrator.progress(), tracker.clone());
        let control = Control::new(Arc::clone(&self.orchestrator), Arc::clone(&live));
        Ok(Dashboard {
            inner: Arc::new(Inner {
                orchestrator: self.orchestrator,
                live,
                control,
                guard,
                bind: self.bind,
                metrics,
                databases: self.databases,
                title: self.title,
                shutdown: CancellationToken::new(),
                tracker,
            }),
        })
    }
}

/// Web monitoring of one [`Orchestrator`]: an axum router ([`router`](Self::router)) and a
/// server for it ([`serve`](Self::serve)). Cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub orchestrator: Arc<Orchestrator>,
    pub live: Arc<Live>,
    pub control: Control,
    pub guard: Arc<Guard>,
    pub bind: SocketAddr,
    pub metrics: Option<PrometheusHandle>,
    pub databases: Vec<(String, String)>,
    pub title: String,
    /// Ends the live event streams (a graceful shutdown waits for open connections).
    pub shutdown: CancellationToken,
    tracker: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tracker.cancel();
    }
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Dashboard")
            .field("bind", &self.inner.bind)
            .field("reads", &self.inner.guard.reads)
            .field("token_source", &self.inner.guard.source)
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// Starts a builder for a dashboard of `orchestrator`.
    pub fn builder(orchestrator: Arc<Orchestrator>) -> DashboardBuilder {
        DashboardBuilder {
            orchestrator,
            bind: DEFAULT_BIND,
            token: None,
            token_for_reads: false,
            metrics: Metrics::Off,
            databases: Vec::new(),
            title: "DMF dashboard".to_owned(),
        }
    }

    /// The routes (see the [crate docs](crate)), to serve or to nest in your own router.
    pub fn router(&self) -> axum::Router {
        crate::api::router(self.clone())
    }

    /// The orchestrator watched.
    pub fn orchestrator(&self) -> &Arc<Orchestrator> {
        &self.inner.orchestrator
    }

    /// The bearer token of the mutating routes.
    pub fn token(&self) -> &str {
        self.inner.guard.token()
    }

    /// Where the token came from.
    pub fn token_source(&self) -> TokenSource {
        self.inner.guard.source
    }

    /// Whether read routes need the token.
    pub fn read_access(&self) -> ReadAccess {
        self.inner.guard.reads
    }

    /// The address [`serve`](Self::serve) and [`listen`](Self::listen) bind.
    pub fn bind_addr(&self) -> SocketAddr {
        self.inner.bind
    }

    /// Starts a run in the background and returns as soon as the run store gave it an id
    /// (what `POST /api/runs` does). Refused while another run of this process is going.
    pub async fn start_run(&self, options: RunOptions) -> Result<StartedRun, DashboardError> {
        self.inner.control.start_run(options).await
    }

    /// Ends every open event stream; call it when shutting down a server that nests the
    /// router, since a graceful shutdown waits for open streams. [`Server`] does it itself.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// Binds the configured address; the [`Server`] then runs until a signal.
    pub async fn listen(&self) -> Result<Server, DashboardError> {
        Server::bind(self.clone()).await
    }

    /// Binds now (a busy port fails before anything runs), prints the banner on stderr, and
    /// serves in a background task until Ctrl-C: what a command-line tool's `--dashboard ADDR`
    /// needs. Returns the page's URL and the task.
    pub async fn serve_in_background(
        &self,
    ) -> Result<(String, tokio::task::JoinHandle<Result<(), DashboardError>>), DashboardError> {
        let server = self.listen().await?;
        eprintln!("{}", server.banner());
        Ok((server.url(), tokio::spawn(server.run())))
    }

    /// Serves on the configured address ([`DashboardBuilder::bind`]) until Ctrl-C, for examples
    /// and small tools: `tokio::spawn(dashboard.clone().serve())` keeps it up during and after a
    /// run. Writes one line to stderr when it starts: the address and, when it was generated,
    /// the token.
    pub async fn serve(self) -> Result<(), DashboardError> {
        let server = self.listen().await?;
        eprintln!("{}", server.banner());
        server.run().await
    }
}

/// The process-wide Prometheus recorder, installed by the first call and shared by every
/// dashboard after it. `dmf_batch_seconds` is exported as a histogram, and every DMF metric is
/// described (`# HELP`).
///
/// Fails when another recorder was installed in this process by other code.
pub fn install_prometheus_recorder() -> Result<PrometheusHandle, DashboardError> {
    static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(names::BATCH_SECONDS.to_owned()), &buckets)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| DashboardError::MetricsRecorder(e.to_string()))?;
    describe_metrics();
    *installed = Some(handle.clone());
    Ok(handle)
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(names::ROWS_TOTAL, Unit::Count, "Records by what became of them (label outcome).");
    describe_counter!(names::BATCHES_TOTAL, Unit::Count, "Batches committed.");
    describe_histogram!(names::BATCH_SECONDS, Unit::Seconds, "Time a batch spent in a stage (label stage).");
    describe_counter!(names::RETRIES_TOTAL, Unit::Count, "Transient failures retried (label stage).");
    describe_gauge!(names::ROWS_IN_FLIGHT, Unit::Count, "Records read but not yet committed.");
    describe_counter!(names::MIGRATIONS_TOTAL, Unit::Count, "Migrations finished, by status.");
    describe_counter!(names::RUNS_TOTAL, Unit::Count, "Orchestrator runs finished, by status.");
}
