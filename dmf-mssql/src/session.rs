//! One lazily opened session that is dropped after any error: every extractor and loader
//! keeps its own. tiberius leaves a connection in an unknown state after an error or a
//! cancelled call (an open transaction, `IDENTITY_INSERT`, a half-read result), so the
//! next use (the engine's retry) starts on a fresh one, and whatever the failed call left
//! open is rolled back by the server when the old connection closes.

use dmf_core::{Result, Stage};

use crate::error::to_dmf_error;
use crate::executor::{Connect, Executor, SqlError};

/// A session opened on first use.
#[derive(Default)]
pub(crate) struct Session {
    executor: Option<Box<dyn Executor>>,
}

impl Session {
    /// No session yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The open session, opening one first when there is none; the flag is true for a new
    /// session (per-session state such as `#dmf_stage` must be made again).
    pub(crate) async fn executor(
        &mut self,
        connector: &dyn Connect,
        stage: Stage,
    ) -> Result<(&mut dyn Executor, bool)> {
        let fresh = self.executor.is_none();
        if fresh {
            let executor = connector.session().await.map_err(|e| {
                to_dmf_error(e, stage, format!("cannot connect to SQL Server at {}", connector.display_name()))
            })?;
            self.executor = Some(executor);
        }
        match self.executor.as_deref_mut() {
            Some(executor) => Ok((executor, fresh)),
            None => Err(dmf_core::Error::transient(stage, "the SQL Server session closed while opening it")),
        }
    }

    /// Drops the session after `error` (any error: see the module documentation).
    pub(crate) fn after_error(&mut self, error: &SqlError) {
        if self.executor.take().is_some() {
            tracing::debug!(%error, "SQL Server session dropped after an error; the next use opens a new one");
        }
    }
}
