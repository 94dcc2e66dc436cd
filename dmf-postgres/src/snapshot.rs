//! An exported snapshot ([`Database::snapshot`](dmf_core::sync::Database::snapshot)): one
//! connection holds the transaction that exported it, and every reader's connection imports it.

use dmf_core::{Error, ErrorKind, Result, Stage};
use tokio_postgres::Client;

use crate::config::Connector;
use crate::error::{connection_lost, describe, to_dmf_error};
use crate::sql::snapshot::{BEGIN_EXPORT, EXPORT, SnapshotId, begin_import};

/// The transaction that exported a snapshot, open while this lives.
///
/// PostgreSQL lets other sessions import a snapshot only while the exporting transaction is
/// open, so it is kept for as long as a reader may (re)connect. Dropping the client ends its
/// connection task, which closes the connection: the server then ends the transaction.
pub(crate) struct ExportedSnapshot {
    id: SnapshotId,
    server: String,
    holder: Client,
}

impl std::fmt::Debug for ExportedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportedSnapshot").field("id", &self.id).field("server", &self.server).finish_non_exhaustive()
    }
}

impl ExportedSnapshot {
    /// Opens a connection, starts a read-only `REPEATABLE READ` transaction and exports its
    /// snapshot.
    pub(crate) async fn export(connector: &Connector) -> Result<Self> {
        let server = connector.name().to_owned();
        let holder = connector.connect(Stage::Extract).await?;
        let doing = || format!("exporting a snapshot of {server}");
        holder.batch_execute(BEGIN_EXPORT).await.map_err(|e| to_dmf_error(e, Stage::Extract, doing()))?;
        let row = holder.query_one(EXPORT, &[]).await.map_err(|e| to_dmf_error(e, Stage::Extract, doing()))?;
        let text: String = row.try_get(0).map_err(|e| to_dmf_error(e, Stage::Extract, doing()))?;
        let id = SnapshotId::parse(&text).ok_or_else(|| {
            Error::fatal(
                Stage::Extract,
                format!("{}: the server returned `{text}`, not a snapshot identifier", doing()),
            )
        })?;
        tracing::info!(%server, snapshot = %id, "exported a snapshot; it is held until the handle is dropped");
        Ok(Self { id, server, holder })
    }

    /// The snapshot's identifier.
    pub(crate) fn id(&self) -> &str {
        self.id.as_str()
    }

    /// Starts a read-only transaction on the snapshot on `client`, a connection of its own.
    ///
    /// Fails (fatally, unless the reader's own connection broke) once the exporting
    /// transaction is gone: the snapshot cannot be imported any more.
    pub(crate) async fn join(&self, client: &Client, stage: Stage) -> Result<()> {
        let lost = || {
            format!(
                "snapshot {} of {} cannot be read any more: the connection holding it was lost; \
                 run again with a new snapshot",
                self.id, self.server
            )
        };
        if self.holder.is_closed() {
            return Err(Error::fatal(stage, lost()));
        }
        let error = match client.batch_execute(&begin_import(&self.id)).await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let doing = format!("joining snapshot {} of {}", self.id, self.server);
        if connection_lost(&error) {
            return Err(to_dmf_error(error, stage, doing));
        }
        // Typically `invalid snapshot identifier` (22023, a data exception by its class) once
        // the exporting transaction has ended: no retry brings it back, and no row is at fault.
        let message = if self.holder.is_closed() { lost() } else { describe(&doing, &error) };
        Err(Error::with_source(stage, ErrorKind::Fatal, message, error))
    }
}
