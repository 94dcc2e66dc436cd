//! [`MssqlRunStore`]: run records, migration records, rejects and checkpoints in the `dmf`
//! control tables of the target.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dmf_core::{
    BackupRecord, Checkpoint, Counts, Error, ErrorKind, MigrationName, MigrationRecord, Reject, RejectRecord, Result,
    RunId, RunRecord, RunStatus, RunStore, Stage, Value,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

use crate::control::read_checkpoint;
use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::executor::{Executor, SqlError, SqlRow};
use crate::session::Session;
use crate::sql::control as sql;
use crate::types::decode;

/// The [`RunStore`] on a SQL Server database's control tables (`dmf.runs`,
/// `dmf.migration_runs`, `dmf.rejects`, and `dmf.checkpoints` shared with the loaders).
/// Statuses are stored as their snake_case names (`running`, `completed`, `rolled_back`…),
/// plans, backups and reject payloads as JSON text, times as UTC `datetime2`.
///
/// One session, used by one call at a time (run records are few and small); it is replaced
/// after any error. Made by [`Database::run_store`](dmf_core::sync::Database::run_store),
/// which creates the tables first.
pub struct MssqlRunStore {
    shared: Arc<Shared>,
    session: Mutex<Session>,
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

fn json_of<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::with_source(Stage::RunStore, ErrorKind::Fatal, "encoding a run record as JSON", e))
}

fn parse_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::with_source(Stage::RunStore, ErrorKind::Fatal, format!("{what} is not valid JSON"), e))
}

fn count(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn time_value(time: Option<SystemTime>) -> Value {
    time.map_or(Value::Null, |t| Value::Timestamp(DateTime::<Utc>::from(t).naive_utc()))
}

fn time_of(row: &SqlRow, index: usize) -> Result<Option<SystemTime>> {
    let cell = row.cell(index).map_err(sql_error)?;
    match decode(cell).map_err(|m| Error::fatal(Stage::RunStore, m))? {
        Value::Timestamp(ts) => Ok(Some(SystemTime::from(ts.and_utc()))),
        Value::TimestampTz(ts) => Ok(Some(SystemTime::from(ts))),
        Value::Null => Ok(None),
        other => Err(Error::fatal(Stage::RunStore, format!("expected a time in the control tables, found {other}"))),
    }
}

fn sql_error(error: SqlError) -> Error {
    Error::with_source(Stage::RunStore, ErrorKind::Fatal, "reading the control tables", error)
}

fn to_u64(n: Option<i64>) -> u64 {
    n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn run_record(row: &SqlRow) -> Result<RunRecord> {
    let status = row.text_required(1).map_err(sql_error)?;
    let plan = row.text_required(2).map_err(sql_error)?;
    let backup = row.text(6).map_err(sql_error)?;
    Ok(RunRecord {
        id: RunId(row.int_required(0).map_err(sql_error)?),
        status: parse_name(&status, "dmf.runs")?,
        plan: parse_json(&plan, "dmf.runs.plan")?,
        host: row.text(3).map_err(sql_error)?.unwrap_or_default(),
        started_at: time_of(row, 4)?.unwrap_or(SystemTime::UNIX_EPOCH),
        finished_at: time_of(row, 5)?,
        backup: backup.map(|b| parse_json::<BackupRecord>(&b, "dmf.runs.backup")).transpose()?,
        error: row.text(7).map_err(sql_error)?,
    })
}

fn migration_record(row: &SqlRow) -> Result<MigrationRecord> {
    let status = row.text_required(2).map_err(sql_error)?;
    let n = |i: usize| row.int(i).map(to_u64).map_err(sql_error);
    Ok(MigrationRecord {
        run: RunId(row.int_required(0).map_err(sql_error)?),
        migration: MigrationName::new(row.text_required(1).map_err(sql_error)?),
        status: parse_name(&status, "dmf.migration_runs")?,
        started_at: time_of(row, 3)?,
        finished_at: time_of(row, 4)?,
        counts: Counts {
            read: n(5)?,
            inserted: n(6)?,
            updated: n(7)?,
            unchanged: n(8)?,
            deleted: n(9)?,
            skipped: n(10)?,
            rejected: n(11)?,
            deferred: 0,
        },
        duration: Duration::from_millis(n(12)?),
        resumed: row.bool(13).map_err(sql_error)?.unwrap_or(false),
        error: row.text(14).map_err(sql_error)?,
    })
}

/// A naive UTC time as stored, for tests.
#[cfg(test)]
pub(crate) fn stored_time(time: SystemTime) -> chrono::NaiveDateTime {
    DateTime::<Utc>::from(time).naive_utc()
}

impl MssqlRunStore {
    pub(crate) fn new(shared: Arc<Shared>, session: Box<dyn Executor>) -> Self {
        Self { shared, session: Mutex::new(Session::with(session)) }
    }

    /// Runs `call` on the session, dropping the session after an error.
    async fn with_session<T>(
        &self,
        doing: impl FnOnce() -> String,
        call: impl for<'a> FnOnce(&'a mut dyn Executor) -> futures::future::BoxFuture<'a, std::result::Result<T, SqlError>>,
    ) -> Result<T> {
        let mut session = self.session.lock().await;
        let (executor, _) = session.executor(self.shared.connector.as_ref(), Stage::RunStore).await?;
        match call(executor).await {
            Ok(value) => Ok(value),
            Err(error) => {
                session.after_error(&error);
                Err(to_dmf_error(error, Stage::RunStore, format!("{} in {}", doing(), self.shared.name())))
            }
        }
    }

    async fn query(&self, doing: impl FnOnce() -> String, sql: String, params: Vec<Value>) -> Result<Vec<SqlRow>> {
        self.with_session(doing, move |executor| Box::pin(async move { executor.query(&sql, &params).await })).await
    }

    async fn execute(&self, doing: impl FnOnce() -> String, sql: &'static str, params: Vec<Value>) -> Result<u64> {
        self.with_session(doing, move |executor| Box::pin(async move { executor.execute(sql, &params).await })).await
    }
}

#[async_trait]
impl RunStore for MssqlRunStore {
    async fn start_run(&self, plan: &[MigrationName], host: &str) -> Result<RunId> {
        let params =
            vec![Value::Text(name_of(&RunStatus::Running)), Value::Text(json_of(plan)?), Value::Text(host.to_owned())];
        let rows = self.query(|| "recording a new run".into(), sql::START_RUN.into(), params).await?;
        let id = rows.first().map(|row| row.int_required(0)).transpose().map_err(sql_error)?;
        id.map(RunId).ok_or_else(|| Error::fatal(Stage::RunStore, "recording a new run returned no id"))
    }

    async fn finish_run(&self, run: RunId, status: RunStatus, error: Option<&str>) -> Result<()> {
        let params = vec![
            Value::Int(run.0),
            Value::Text(name_of(&status)),
            error.map_or(Value::Null, |e| Value::Text(e.to_owned())),
        ];
        let updated = self.execute(|| format!("recording the end of run {run}"), sql::FINISH_RUN, params).await?;
        if updated == 0 {
            return Err(Error::fatal(Stage::RunStore, format!("there is no run {run} in dmf.runs to finish")));
        }
        Ok(())
    }

    async fn record_backup(&self, run: RunId, backup: &BackupRecord) -> Result<()> {
        let params = vec![Value::Int(run.0), Value::Text(json_of(backup)?)];
        self.execute(|| format!("recording the backup of run {run}"), sql::RECORD_BACKUP, params).await?;
        Ok(())
    }

    async fn save_migration_record(&self, record: &MigrationRecord) -> Result<()> {
        let c = &record.counts;
        let params = vec![
            Value::Int(record.run.0),
            Value::Text(record.migration.as_str().to_owned()),
            Value::Text(name_of(&record.status)),
            time_value(record.started_at),
            time_value(record.finished_at),
            count(c.read),
            count(c.inserted),
            count(c.updated),
            count(c.unchanged),
            count(c.deleted),
            count(c.skipped),
            count(c.rejected),
            Value::Int(i64::try_from(record.duration.as_millis()).unwrap_or(i64::MAX)),
            Value::Bool(record.resumed),
            record.error.as_ref().map_or(Value::Null, |e| Value::Text(e.clone())),
        ];
        let doing = || format!("recording migration `{}` of run {}", record.migration, record.run);
        self.execute(doing, sql::SAVE_MIGRATION_RECORD, params).await?;
        Ok(())
    }

    async fn latest_record(&self, migration: &MigrationName) -> Result<Option<MigrationRecord>> {
        let params = vec![Value::Text(migration.as_str().to_owned())];
        let rows =
            self.query(|| format!("reading the latest record of `{migration}`"), sql::latest_record(), params).await?;
        rows.first().map(migration_record).transpose()
    }

    async fn run(&self, run: RunId) -> Result<Option<RunRecord>> {
        let rows = self.query(|| format!("reading run {run}"), sql::run(), vec![Value::Int(run.0)]).await?;
        rows.first().map(run_record).transpose()
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let params = vec![Value::Int(i64::try_from(limit).unwrap_or(i64::MAX))];
        let rows = self.query(|| "reading the latest runs".into(), sql::runs(), params).await?;
        rows.iter().map(run_record).collect()
    }

    async fn migration_records(&self, run: RunId) -> Result<Vec<MigrationRecord>> {
        let rows = self
            .query(
                || format!("reading the migration records of run {run}"),
                sql::migration_records(),
                vec![Value::Int(run.0)],
            )
            .await?;
        rows.iter().map(migration_record).collect()
    }

    async fn record_rejects(&self, run: RunId, migration: &MigrationName, rejects: &[Reject]) -> Result<()> {
        if rejects.is_empty() {
            return Ok(());
        }
        let entries: Vec<serde_json::Value> = rejects
            .iter()
            .map(|r| {
                serde_json::json!({"stage": name_of(&r.stage), "key": r.key, "reason": r.reason, "payload": r.payload})
            })
            .collect();
        let params =
            vec![Value::Int(run.0), Value::Text(migration.as_str().to_owned()), Value::Text(json_of(&entries)?)];
        let doing = || format!("recording {} rejects of `{migration}` in run {run}", rejects.len());
        self.query(doing, sql::RECORD_REJECTS.into(), params).await?;
        Ok(())
    }

    async fn rejects(
        &self,
        run: RunId,
        migration: Option<&MigrationName>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<RejectRecord>> {
        let params = vec![
            Value::Int(run.0),
            migration.map_or(Value::Null, |m| Value::Text(m.as_str().to_owned())),
            Value::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
            Value::Int(i64::try_from(offset).unwrap_or(i64::MAX)),
        ];
        let rows = self.query(|| format!("reading the rejects of run {run}"), sql::REJECTS.into(), params).await?;
        rows.iter()
            .map(|row| {
                let stage = row.text_required(2).map_err(sql_error)?;
                let payload = row.text(5).map_err(sql_error)?;
                Ok(RejectRecord {
                    run: RunId(row.int_required(0).map_err(sql_error)?),
                    migration: MigrationName::new(row.text_required(1).map_err(sql_error)?),
                    reject: Reject {
                        stage: parse_name(&stage, "dmf.rejects")?,
                        key: row.text(3).map_err(sql_error)?.unwrap_or_default(),
                        reason: row.text(4).map_err(sql_error)?.unwrap_or_default(),
                        payload: match payload {
                            Some(text) => parse_json(&text, "dmf.rejects.payload")?,
                            None => serde_json::Value::Null,
                        },
                    },
                })
            })
            .collect()
    }

    async fn checkpoint(&self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        let migration = migration.clone();
        let doing = || format!("reading the checkpoint of `{migration}`");
        let name = migration.clone();
        self.with_session(doing, move |executor| Box::pin(async move { read_checkpoint(executor, &name).await })).await
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

    #[test]
    fn times_are_stored_as_utc_datetime2() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(time_value(Some(time)), Value::Timestamp(stored_time(time)));
        assert_eq!(time_value(None), Value::Null);
    }
}
