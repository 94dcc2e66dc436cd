//! [`DbMailNotifier`]: run summaries by Database Mail (`msdb.dbo.sp_send_dbmail`), an
//! opt-in notifier beside the generic ones.

use std::sync::Arc;

use async_trait::async_trait;
use dmf_core::{Notifier, Result, RunSummary, Stage, Value};

use crate::error::to_dmf_error;
use crate::executor::Connect;
use crate::sql::admin as sql;

/// Sends each run's summary as a plain-text mail through the server's Database Mail.
///
/// Needs `sp_configure 'Database Mail XPs', 1`, a mail profile, and a login in msdb's
/// `DatabaseMailUserRole` with access to the profile. Not available on Azure SQL Database.
/// Database Mail queues the mail: success means queued (the returned `mailitem_id` is
/// logged), not delivered; `msdb.dbo.sysmail_allitems` tells the rest. A failing notifier is
/// logged by the orchestrator and never fails the run.
pub struct DbMailNotifier {
    connector: Arc<dyn Connect>,
    profile: String,
    recipients: String,
    subject_prefix: String,
}

impl DbMailNotifier {
    pub(crate) fn new(connector: Arc<dyn Connect>, profile: &str, recipients: &str) -> Self {
        Self {
            connector,
            profile: profile.to_owned(),
            recipients: recipients.to_owned(),
            subject_prefix: "dmf".to_owned(),
        }
    }

    /// The start of every subject (default `dmf`).
    pub fn subject_prefix(mut self, prefix: &str) -> Self {
        self.subject_prefix = prefix.to_owned();
        self
    }

    /// The subject for `summary`: `dmf run 42 completed` / `dmf run 42 FAILED`.
    pub fn subject(&self, summary: &RunSummary) -> String {
        let outcome =
            if summary.succeeded() { "completed".to_owned() } else { format!("{:?}", summary.status).to_uppercase() };
        format!("{} run {} {outcome}", self.subject_prefix, summary.run)
    }
}

#[async_trait]
impl Notifier for DbMailNotifier {
    async fn notify(&self, summary: &RunSummary) -> Result<()> {
        let server = self.connector.display_name();
        let mut session = self
            .connector
            .session()
            .await
            .map_err(|e| to_dmf_error(e, Stage::Notify, format!("cannot connect to SQL Server at {server}")))?;
        let params = [
            Value::Text(self.profile.clone()),
            Value::Text(self.recipients.clone()),
            Value::Text(self.subject(summary)),
            Value::Text(summary.to_string()),
        ];
        let rows = session.query(sql::SEND_MAIL, &params).await.map_err(|e| {
            to_dmf_error(
                e,
                Stage::Notify,
                format!("sending the summary of run {} by Database Mail on {server}", summary.run),
            )
        })?;
        let mail = rows.first().and_then(|row| row.int(0).ok().flatten());
        tracing::info!(run = %summary.run, mailitem_id = ?mail, profile = %self.profile, "run summary queued by Database Mail");
        Ok(())
    }
}
