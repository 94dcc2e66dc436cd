//! [`PgRunStore`]: run records, migration records, rejects and checkpoints in the `dmf`
//! control tables of the target.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dmf_core::{
    BackupRecord, Checkpoint, Counts, Error, ErrorKind, MigrationName, MigrationRecord, Reject, RejectRecord, Result,
    RunId, RunRecord, RunStatus, RunStore, Stage,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio_postgres::Client;
use tokio_postgres::types::Json;

use crate::control::read_checkpoint;
use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::session::Session;
use crate::sql::control as sql;

/// The [`RunStore`] on a PostgreSQL database's control tables (`dmf.runs`,
/// `dmf.migration_runs`, `dmf.rejects`, and `dmf.checkpoints` shared with the loaders).
/// Statuses are stored as their snake_case names (`running`, `completed`, `rolled_back`…).
///
/// One connection, used by one call at a time (run records are few and small); it is
/// replaced after it breaks. Made by [`Database::run_store`](dmf_core::sync::Database::run_store),
/// which creates the tables first.
pub struct PgRunStore {
    shared: Arc<Shared>,
    session: Mutex<Session>,
}

impl PgRunStore {
    pub(crate) fn new(shared: Arc<Shared>, client: Client) -> Self {
        Self { shared, session: Mutex::new(Session::with_client(client)) }
    }

    fn fail(&self, session: &mut Session, error: tokio_postgres::Error, doing: &str) -> Error {
        session.after_error(&error);
        to_dmf_error(error, Stage::RunStore, format!("{doing} in {}", self.shared.connector.name()))
    }
}

/// The snake_case name a status serialises to.
fn name_of<T: Serialize>(status: &T) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

fn parse_name<T: DeserializeOwned>(name: &str, table: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|e| {
        Error::with_source(Stage::RunStore, ErrorKind::Fatal, format!("unknown status `{name}` in {table}"), e)
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: Option<i64>) -> u64 {
    n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn run_record(row: &tokio_postgres::Row) -> Result<RunRecord> {
    let status: String = row.get(1);
    let Json(plan): Json<Vec<MigrationName>> = row.get(2);
    let backup: Option<Json<BackupRecord>> = row.get(6);
    Ok(RunRecord {
        id: RunId(row.get(0)),
        status: parse_name(&status, "dmf.runs")?,
        plan,
        host: row.get(3),
        started_at: row.get(4),
        finished_at: row.get(5),
        backup: backup.map(|Json(b)| b),
        error: row.get(7),
    })
}

fn migration_record(row: &tokio_postgres::Row) -> Result<MigrationRecord> {
    let status: String = row.get(2);
    let count = |i: usize| to_u64(row.get(i));
    Ok(MigrationRecord {
        run: RunId(row.get(0)),
        migration: MigrationName::new(row.get::<_, &str>(1)),
        status: parse_name(&status, "dmf.migration_runs")?,
        started_at: row.get(3),
        finished_at: row.get(4),
        counts: Counts {
            read: count(5),
            inserted: count(6),
            updated: count(7),
            unchanged: count(8),
            deleted: count(9),
            skipped: count(10),
            rejected: count(11),
            deferred: 0,
        },
        duration: Duration::from_millis(to_u64(row.get(12))),
        resumed: row.get::<_, Option<bool>>(13).unwrap_or(false),
        error: row.get(14),
    })
}

#[async_trait]
impl RunStore for PgRunStore {
    async fn start_run(&self, plan: &[MigrationName], host: &str) -> Result<RunId> {
        let mut session = self.session.lock().await;
        let (client, _) = session.client(&self.shared.connector, Stage::RunStore).await?;
        let result = client.query_one(sql::START_RUN, &[&name_of(&RunStatus::Running), &Json(plan), &host]).await;
        let row = result.map_err(|e| self.fail(&mut session, e, "recording a new run"))?;
        Ok(RunId(row.get(0)))
    }

    async fn finish_run(&self, run: RunId, status: RunStatus, error: Option<&str>) -> Result<()> {
        let mut session = self.session.lock().await;
        let (client, _) = session.client(&self.shared.connector, Stage::RunStore).await?;
        let result = client.execute(sql::FINISH_RUN, &[&run.0, &name_of(&status), &error]).await;
        let updated = result.map_err(|e| self.fail(&mut session, e, &format!("recording the end of run {run}")))?;
        if updated == 0 {
            return Err(Error::fatal(Stage::RunStore, format!("there is no run {run} in dmf.runs to finish")));
        }
        Ok(())
    }

    async fn record_backup(&self, run: RunId, backup: &BackupRecord) -> Result<()> {
        let mut session = self.session.lock().await;
        let (client, _) = session.client(&self.shared.connector, Stage::RunStore).await?;
        let result = client.execute(sql::RECORD_BACKUP, &[&run.0, &Json(backup)]).await;
        result.map_err(|e| self.fail(&mut session, e, &format!("recording the backup of run {run}")))?;
        Ok(())
    }

    async fn save_migration_record(&self, record: &MigrationRecord) -> Result<()> {
        let c = &record.counts;
        let duration = i64::try_from(record.duration.as_millis()).unwrap_or(i64::MAX);
        let mut session = self.session.lock().await;
        let (client, _) = session.client(&self.shared.connector, Stage::RunStore).await?;
        let result = client
            .execute(
                sql::SAVE_MIGRATION_RECORD,
                &[
                    &record.run.0,
                    &record.migration.as_str(),
                    &name_of(&record.status),
                    &record.started_at,
                    &record.finished_at,
                    &to_i64(c.read),
                    &to_i64(c.inserted),
                    &to_i64(c.updated),
                    &to_i64(c.unchanged),
                    &to_i64(c.deleted),
                    &to_i64(c.skipped),
                    &to_i64(c.rejected),
                    &duration,
                    &record.resumed,
                    &record.error,
                ],
            )
            .await;
        let doing = format!("recording migration `{}` of run {}", record.migration, record.run);
        result.map_err(|e| self.fail(&mut session, e, &doing))?;
        Ok(())
    }

    async fn latest_record(&self, migration: &MigrationName) -> Result<Option<MigrationRecord>> {
        let mut session = self.session.lock().await;
        let (client, _) = session.client(&self.shared.connector, Stage::RunStore).await?;
        let result = client.query_opt(&sql::latest_record(), &[&migration.as_str()]).await;
        let row =
            result.map_err(|e| self.fail(&mut session, e, &format!("reading the latest record of `{migration}`")))?;
        row.as_ref().map(migration_record).transpose()
    }

    async fn run(&self, run: RunId) -> Result<Option<RunRecord>> {
        let mut session = self.session.lock().await;
        let (client, _) = session.client(&self.shared.connector, Stage::RunStore).await?;
        let result = client.query_opt(&sql::run(), &[&run.0]).await;
        let row = result.map_err(|e| self.fail(&mut session, e, &format!("reading run {run}")))?;
        row.as_ref().map(run_record).transpose()
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut session = self.session.lock().await;
        let (client, _) = session.client(&self.shared.connector, Stage::RunStore).await?;
        let result = client.query(&sql::runs(), &[&limit]).await;
        let rows = result.map_err(|e| self.fail(&mut session, e, "reading the latest runs"))?;
        rows.iter().map(run_record).collect()
    }

    async fn migration_records(&self, run: RunId) -> Result<Vec<MigrationRecord>> {
        let mut session = self.session.lock().await;
        let (client, _) = session.client(&self.shared.connector, Stage::RunStore).await?;
        let result = client.query(&sql::migration_records(), &[&run.0]).await;
        let rows =
            result.map_err(|e| self.fail(&mut session, e, &format!("reading the migration records of run {run}")))?;
        rows.iter().map(migration_record).collect()
    }

    async fn record_rejects(&self, run: RunId, migration: &MigrationName, rejects: &[Reject]) -> Result<()> {
        if rejects.is_empty() {
            return Ok(());
        }
        let stages: Vec<String> = rejects.iter().map(|r| name_of(&r.stage)).collect();
        let keys: Vec<&str> = rejects.iter().map(|r| r.key.as_str()).collect();
        let reasons: Vec<&str> = rejects.iter().map(|r| r.reason.as_str()).collect();
        let payloads: Vec<String> = rejects.iter().map(|r| r.payload.to_string()).collect();
        let mut session = self.session.lock().await;
        let (client, _) = session.client(&self.shared.connector, Stage::RunStore).await?;
        let result = client
            .execute(sql::RECORD_REJECTS, &[&run.0, &migration.as_str(), &stages, &keys, &reasons, &payloads])
            .await;
        let doing = format!("recording {} rejects of `{migration}` in run {run}", rejects.len());
        result.map_err(|e| self.fail(&mut session, e, &doing))?;
        Ok(())
    }

    async fn rejects(
        &self,
        run: RunId,
        migration: Option<&MigrationName>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<RejectRecord>> {
        let (limit, offset) = (i64::try_from(limit).unwrap_or(i64::MAX), i64::try_from(offset).unwrap_or(i64::MAX));
        let migration = migration.map(MigrationName::as_str);
        let mut session = self.session.lock().await;
        let (client, _) = session.client(&self.shared.connector, Stage::RunStore).await?;
        let result = client.query(sql::REJECTS, &[&run.0, &migration, &limit, &offset]).await;
        let rows = result.map_err(|e| self.fail(&mut session, e, &format!("reading the rejects of run {run}")))?;
        rows.iter()
            .map(|row| {
                let stage: String = row.get(2);
                Ok(RejectRecord {
                    run: RunId(row.get(0)),
                    migration: MigrationName::new(row.get::<_, &str>(1)),
                    reject: Reject {
                        stage: parse_name(&stage, "dmf.rejects")?,
                        key: row.get(3),
                        reason: row.get(4),
                        payload: row.get::<_, Option<serde_json::Value>>(5).unwrap_or(serde_json::Value::Null),
                    },
                })
            })
            .collect()
    }

    async fn checkpoint(&self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        let mut session = self.session.lock().await;
        let (client, _) = session.client(&self.shared.connector, Stage::RunStore).await?;
        let result = read_checkpoint(&*client, migration).await;
        result.map_err(|e| self.fail(&mut session, e, &format!("reading the checkpoint of `{migration}`")))
    }
}

#[cfg(test)]
mod tests {
    use dmf_core::{MigrationStatus, Stage};

    use super::*;

    #[test]
    fn statuses_are_stored_by_their_snake_case_names() {
        assert_eq!(name_of(&RunStatus::RolledBack), "rolled_back");
        assert_eq!(name_of(&MigrationStatus::Cancelled), "cancelled");
        assert_eq!(name_of(&Stage::Load), "load");
        assert_eq!(parse_name::<RunStatus>("rolled_back", "dmf.runs").unwrap(), RunStatus::RolledBack);
        let unknown = parse_name::<RunStatus>("paused", "dmf.runs").unwrap_err();
        assert!(unknown.to_string().contains("unknown status `paused` in dmf.runs"), "{unknown}");
    }
}
