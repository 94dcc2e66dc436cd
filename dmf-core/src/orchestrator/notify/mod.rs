//! Notifications of a run's outcome: the [`Notifier`] trait, [`LogNotifier`] and (crate
//! feature `webhook`) `WebhookNotifier`.

#[cfg(feature = "webhook")]
mod webhook;

use async_trait::async_trait;

#[cfg(feature = "webhook")]
pub use webhook::{
    WebhookBackup, WebhookBuilder, WebhookCounts, WebhookEvent, WebhookMigration, WebhookNotifier, WebhookPayload,
};

use crate::error::Result;
use crate::orchestrator::RunSummary;

/// Told of every finished run, successful or not, with its summary.
///
/// Stored as `Box<dyn Notifier>`, so it uses `async-trait`. A failing notifier is logged and
/// never fails the run it reports on.
#[async_trait]
pub trait Notifier: Send + Sync {
    /// Sends the summary.
    async fn notify(&self, summary: &RunSummary) -> Result<()>;
}

#[async_trait]
impl<N: Notifier + ?Sized> Notifier for std::sync::Arc<N> {
    async fn notify(&self, summary: &RunSummary) -> Result<()> {
        (**self).notify(summary).await
    }
}

/// Writes the summary to the `tracing` log (info on success, error on failure).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn notify(&self, summary: &RunSummary) -> Result<()> {
        if summary.succeeded() {
            tracing::info!(run = %summary.run, "run completed\n{summary}");
        } else {
            tracing::error!(run = %summary.run, "run failed\n{summary}");
        }
        Ok(())
    }
}
