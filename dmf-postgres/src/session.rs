//! One lazily opened connection that is replaced after it breaks: every extractor, loader and
//! run store keeps its own.

use dmf_core::{Result, Stage};
use tokio_postgres::Client;

use crate::config::Connector;
use crate::error::connection_lost;

/// A connection opened on first use and dropped when an error says it is gone (closed, I/O
/// error, server shutting down), so the next use (the engine's retry) opens a new one.
#[derive(Default)]
pub(crate) struct Session {
    client: Option<Client>,
}

impl Session {
    /// No connection yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Starts with a connection already open.
    pub(crate) fn with_client(client: Client) -> Self {
        Self { client: Some(client) }
    }

    /// The open connection, opening one first when there is none or the last one closed; the
    /// flag is true for a new connection (per-connection state such as prepared statements
    /// must be made again).
    pub(crate) async fn client(&mut self, connector: &Connector, stage: Stage) -> Result<(&mut Client, bool)> {
        let (client, fresh) = match self.client.take() {
            Some(client) if !client.is_closed() => (client, false),
            _ => (connector.connect(stage).await?, true),
        };
        Ok((self.client.insert(client), fresh))
    }

    /// Forgets the connection when `error` means it cannot be used any more.
    pub(crate) fn after_error(&mut self, error: &tokio_postgres::Error) {
        if connection_lost(error) {
            tracing::debug!(%error, "PostgreSQL connection lost; the next use reconnects");
            self.client = None;
        }
    }
}
