//! A bound listening socket serving a [`Dashboard`] until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::auth::TokenSource;
use crate::dashboard::Dashboard;
use crate::error::DashboardError;

/// A dashboard bound to its address, not serving yet; see [`Dashboard::listen`].
#[derive(Debug)]
pub struct Server {
    dashboard: Dashboard,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl Server {
    pub(crate) async fn bind(dashboard: Dashboard) -> Result<Self, DashboardError> {
        let addr = dashboard.bind_addr();
        let listener = TcpListener::bind(addr).await.map_err(|source| DashboardError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(|source| DashboardError::Bind { addr, source })?;
        Ok(Self { dashboard, listener, local_addr })
    }

    /// The address bound (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The page's address, `http://ADDR/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.local_addr)
    }

    /// One line for the terminal: where the dashboard is and, when it was generated (and only
    /// then), the token, which is shown nowhere else.
    pub fn banner(&self) -> String {
        let token = match self.dashboard.token_source() {
            TokenSource::Generated => format!(
                "token for actions: {} (generated; set {} to choose one)",
                self.dashboard.token(),
                crate::TOKEN_ENV
            ),
            TokenSource::Environment => format!("token for actions: from {}", crate::TOKEN_ENV),
            TokenSource::Given => "token for actions: as configured".to_owned(),
        };
        format!("dmf-dashboard: serving {} ; {token}", self.url())
    }

    /// Serves until `shutdown` completes, then ends the event streams and waits for open
    /// requests to finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), DashboardError> {
        let dashboard = self.dashboard.clone();
        let signal = async move {
            shutdown.await;
            dashboard.shutdown();
        };
        axum::serve(self.listener, self.dashboard.router())
            .with_graceful_shutdown(signal)
            .await
            .map_err(DashboardError::Serve)
    }

    /// Serves until Ctrl-C.
    pub async fn run(self) -> Result<(), DashboardError> {
        self.run_until(async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                // Without a signal handler the server would never stop: stop now instead.
                tracing::error!(%error, "cannot listen for Ctrl-C; stopping the dashboard");
            }
        })
        .await
    }
}
