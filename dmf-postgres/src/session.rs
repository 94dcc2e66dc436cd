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
    /// A call marked with [`begin_call`](Self::begin_call) has not ended.
    in_call: bool,
}

impl Session {
    /// No connection yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// No connection yet; each one will read `snapshot` (when given).
    pub(crate) fn in_snapshot(snapshot: Option<Arc<ExportedSnapshot>>) -> Self {
        Self { client: None, snapshot, in_call: false }
    }

    /// Marks the start of a call that must run on a connection in a known state. When the
    /// previous call never reached [`end_call`](Self::end_call) or an error (its future was
    /// dropped mid-flight, say by the engine's write timeout while the server was silent),
    /// its connection may be stuck mid-transaction or mid-statement: it is dropped, and the
    /// call opens a new one.
    pub(crate) fn begin_call(&mut self) {
        if std::mem::replace(&mut self.in_call, true) && self.client.take().is_some() {
            tracing::debug!("the previous call on this connection was abandoned; opening a new one");
        }
    }

    /// Marks the end of a call begun with [`begin_call`](Self::begin_call).
    pub(crate) fn end_call(&mut self) {
        self.in_call = false;
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
        // The server answered (or the connection is dropped below): the call ended.
        self.in_call = false;
        if self.snapshot.is_some() {
            tracing::debug!(%error, "error in a snapshot transaction; the next use joins the snapshot again");
            self.client = None;
        } else if connection_lost(error) {
            tracing::debug!(%error, "PostgreSQL connection lost; the next use reconnects");
            self.client = None;
        }
    }
}
