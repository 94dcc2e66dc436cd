//! One lazily opened connection that is replaced after it breaks: every extractor and loader
//! keeps its own (the run store's sessions are [`PgConnector`](crate::PgConnector)'s).

use std::sync::Arc;

use dmf_core::{Result, Stage};
use tokio_postgres::Client;

use crate::config::Connector;
use crate::error::connection_lost;
use crate::snapshot::ExportedSnapshot;

/// A connection opened on first use and dropped when an error says it is gone (closed, I/O
/// error, server shutting down), so the next use (the engine's retry) opens a new one.
///
/// A session [in a snapshot](Session::in_snapshot) starts every new connection in a read-only
/// transaction on that snapshot, and drops the connection after any error (the transaction is
/// aborted then): the next use joins the snapshot again on a new one.
#[derive(Default)]
pub(crate) struct Session {
    client: Option<Client>,
    snapshot: Option<Arc<ExportedSnapshot>>,
}

impl Session {
    /// No connection yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// No connection yet; each one will read `snapshot` (when given).
    pub(crate) fn in_snapshot(snapshot: Option<Arc<ExportedSnapshot>>) -> Self {
        Self { client: None, snapshot }
    }

    /// Every statement runs in the one transaction of a snapshot ([`Self::in_snapshot`]).
    pub(crate) fn in_transaction(&self) -> bool {
        self.snapshot.is_some()
    }

    /// The open connection, opening one first when there is none or the last one closed; the
    /// flag is true for a new connection (per-connection state such as prepared statements
    /// must be made again).
    pub(crate) async fn client(&mut self, connector: &Connector, stage: Stage) -> Result<(&mut Client, bool)> {
        let (client, fresh) = match self.client.take() {
            Some(client) if !client.is_closed() => (client, false),
            _ => {
                let client = connector.connect(stage).await?;
                if let Some(snapshot) = &self.snapshot {
                    // On failure the new connection is dropped: it never reads outside the snapshot.
                    snapshot.join(&client, stage).await?;
                }
                (client, true)
            }
        };
        Ok((self.client.insert(client), fresh))
    }

    /// Forgets the connection when `error` means it cannot be used any more.
    pub(crate) fn after_error(&mut self, error: &tokio_postgres::Error) {
        if self.snapshot.is_some() {
            tracing::debug!(%error, "error in a snapshot transaction; the next use joins the snapshot again");
            self.client = None;
        } else if connection_lost(error) {
            tracing::debug!(%error, "PostgreSQL connection lost; the next use reconnects");
            self.client = None;
        }
    }
}
