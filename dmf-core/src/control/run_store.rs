//! [`SqlRunStore`]: the [`RunStore`] on a database's control tables, written once for every
//! adapter over a [`SqlConnector`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::checkpoints;
use super::decode::{Cells, status_name};
use super::dialect::ControlDialect;
use super::leases;
use super::session::{SqlConnector, SqlSession};
use super::tables::{self, MIGRATION_RUNS as RECORD_COLUMNS, RUNS as RUN_COLUMNS};
use crate::catalog::Sequence;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result, Stage};
use crate::migration::Counts;
use crate::names::{MigrationName, RunId};
use crate::orchestrator::{
    BackupRecord, LeaseClaim, LeaseClaimed, LeaseRecord, MigrationRecord, MigrationStatus, RejectRecord, RunRecord,
    RunStatus, RunStore, sort_in_plan_order,
};
use crate::record::Reject;
use crate::value::Value;

/// The columns of `rejects` a new reject fills (all but its generated id).
const REJECT_COLUMNS: [&str; 7] = [
    tables::REJECTS[1],
    tables::REJECTS[2],
    tables::REJECTS[3],
    tables::REJECTS[4],
    tables::REJECTS[5],
    tables::REJECTS[6],
    tables::REJECTS[7],
];

/// Runs, migration records, rejects and checkpoints in the control tables (`runs`,
/// `migration_runs`, `rejects`, `checkpoints`, named by the dialect), over any database that
/// provides a [`SqlConnector`]. Statuses are stored as their snake_case names (`running`,
/// `completed`, `rolled_back`…), plans, backups and payloads as JSON, times as the database's
/// timestamp type (UTC).
///
/// One session, used by one call at a time (run records are few and small); it is dropped
/// after an error and a new one opened by the next call. The tables must exist: adapters
/// create them before handing the store out.
pub struct SqlRunStore {
    connector: Arc<dyn SqlConnector>,
    session: Mutex<Option<Box<dyn SqlSession>>>,
}

impl SqlRunStore {
    /// A store on the control tables of `connector`'s database.
    pub fn new(connector: Arc<dyn SqlConnector>) -> Self {
        Self { connector, session: Mutex::new(None) }
    }

    fn sql(&self) -> Sql<'_> {
        Sql { connector: self.connector.as_ref() }
    }

    /// Runs `statements` on the store's session (opened when there is none), in one
    /// transaction when there are several, naming `doing` and the database in an error; the
    /// session is dropped after one. Returns the rows of a query (the last statement's) or the
    /// number of rows the statements changed.
    async fn run_statements(&self, doing: impl FnOnce() -> String, statements: Vec<Statement>) -> Result<Outcome> {
        let mut slot = self.session.lock().await;
        let limit = self.connector.call_timeout();
        let call = async {
            if slot.is_none() {
                *slot = Some(self.connector.session().await?);
            }
            let session = slot.as_deref_mut().ok_or_else(|| Error::fatal(Stage::RunStore, "no session"))?;
            run_in(session, self.connector.dialect(), statements).await
        };
        // A silent server must not hold the run forever: past the limit the call is abandoned,
        // and its session (maybe mid-transaction) dropped below.
        let result = tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(Error::transient(
                Stage::RunStore,
                format!("no answer for {} s (the control plane's call timeout)", limit.as_secs_f32()),
            ))
        });
        result.map_err(|error| {
            *slot = None;
            let kind = error.kind();
            Error::with_source(Stage::RunStore, kind, format!("{} in {}", doing(), self.connector.name()), error)
        })
    }

    async fn query(&self, doing: impl FnOnce() -> String, sql: String, params: Vec<Value>) -> Result<Vec<Vec<Value>>> {
        match self.run_statements(doing, vec![Statement { sql, params, query: true }]).await? {
            Outcome::Rows(rows) => Ok(rows),
            Outcome::Changed(_) => Ok(Vec::new()),
        }
    }

    async fn execute(&self, doing: impl FnOnce() -> String, statements: Vec<(String, Vec<Value>)>) -> Result<u64> {
        let statements = statements.into_iter().map(|(sql, params)| Statement { sql, params, query: false }).collect();
        match self.run_statements(doing, statements).await? {
            Outcome::Changed(n) => Ok(n),
            Outcome::Rows(_) => Ok(0),
        }
    }
}

struct Statement {
    sql: String,
    params: Vec<Value>,
    query: bool,
}

enum Outcome {
    Rows(Vec<Vec<Value>>),
    Changed(u64),
}

async fn run_in(
    session: &mut dyn SqlSession,
    dialect: &dyn ControlDialect,
    statements: Vec<Statement>,
) -> Result<Outcome> {
    if let [one] = statements.as_slice() {
        return Ok(if one.query {
            Outcome::Rows(session.query(&one.sql, &one.params).await?)
        } else {
            Outcome::Changed(session.execute(&one.sql, &one.params).await?)
        });
    }
    session.batch(dialect.begin()).await?;
    let mut outcome = Outcome::Changed(0);
    for statement in &statements {
        let done = if statement.query {
            session.query(&statement.sql, &statement.params).await.map(Outcome::Rows)
        } else {
            session.execute(&statement.sql, &statement.params).await.map(Outcome::Changed)
        };
        match (done, &mut outcome) {
            (Ok(Outcome::Changed(n)), Outcome::Changed(total)) => *total += n,
            (Ok(other), _) => outcome = other,
            (Err(error), _) => {
                // The session is dropped after the error anyway; the rollback is a courtesy.
                let _ = session.batch(dialect.rollback()).await;
                return Err(error);
            }
        }
    }
    session.batch(dialect.commit()).await?;
    Ok(outcome)
}

/// Statement text in the connector's dialect.
struct Sql<'a> {
    connector: &'a dyn SqlConnector,
}

impl Sql<'_> {
    fn dialect(&self) -> &dyn ControlDialect {
        self.connector.dialect()
    }

    fn table(&self, name: &str) -> String {
        self.dialect().table(name)
    }

    fn column(&self, name: &str) -> String {
        self.dialect().column(name)
    }

    fn columns(&self, columns: &[&str]) -> String {
        columns.iter().map(|c| self.column(c)).collect::<Vec<_>>().join(", ")
    }

    fn param(&self, n: usize) -> String {
        self.dialect().param(n)
    }

    fn params(&self, numbers: std::ops::RangeInclusive<usize>) -> String {
        numbers.map(|n| self.param(n)).collect::<Vec<_>>().join(", ")
    }
}

/// The undo log's `action` of a sequence's recorded value.
const SEQUENCE_ACTION: &str = "sequence";

fn count_value(n: usize) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn to_i64(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn time(time: SystemTime) -> Value {
    Value::TimestampTz(time.into())
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Value> {
    serde_json::to_string(value)
        .map(Value::Json)
        .map_err(|e| Error::with_source(Stage::RunStore, crate::ErrorKind::Fatal, "serialising a control record", e))
}

fn run_record(row: Vec<Value>) -> Result<RunRecord> {
    let cells = Cells::new(row, "runs");
    Ok(RunRecord {
        id: RunId(cells.int(0)?),
        status: cells.status(1)?,
        plan: cells.json(2)?,
        host: cells.text(3)?,
        started_at: cells.time(4)?.unwrap_or(SystemTime::UNIX_EPOCH),
        finished_at: cells.time(5)?,
        backup: cells.json_opt(6)?,
        error: cells.text_opt(7)?,
    })
}

fn migration_record(row: Vec<Value>) -> Result<MigrationRecord> {
    let cells = Cells::new(row, "migration_runs");
    let count = |i: usize| cells.count(i);
    Ok(MigrationRecord {
        run: RunId(cells.int(0)?),
        migration: MigrationName::new(cells.text(1)?),
        status: cells.status(2)?,
        started_at: cells.time(3)?,
        finished_at: cells.time(4)?,
        counts: Counts {
            read: count(5)?,
            inserted: count(6)?,
            updated: count(7)?,
            unchanged: count(8)?,
            deleted: count(9)?,
            skipped: count(10)?,
            rejected: count(11)?,
            deferred: 0,
        },
        duration: Duration::from_millis(count(12)?),
        resumed: cells.bool(13)?.unwrap_or(false),
        error: cells.text_opt(14)?,
    })
}

#[async_trait]
impl RunStore for SqlRunStore {
    async fn start_run(&self, plan: &[MigrationName], host: &str) -> Result<RunId> {
        let sql = self.sql();
        let params = vec![
            Value::Text(status_name(&RunStatus::Running)),
            json(plan)?,
            Value::Text(host.to_owned()),
            time(SystemTime::now()),
        ];
        let statement = sql.dialect().insert_returning_id(
            &sql.table("runs"),
            &sql.columns(&RUN_COLUMNS[1..5]),
            &sql.params(1..=params.len()),
        );
        let rows = self.query(|| "recording a new run".to_owned(), statement, params).await?;
        let row = rows.into_iter().next().ok_or_else(|| Error::fatal(Stage::RunStore, "no run id came back"))?;
        Ok(RunId(Cells::new(row, "runs").int(0)?))
    }

    async fn finish_run(&self, run: RunId, status: RunStatus, error: Option<&str>) -> Result<()> {
        let sql = self.sql();
        let statement = format!(
            "UPDATE {} SET {} = {}, {} = {}, {} = {} WHERE {} = {}",
            sql.table("runs"),
            sql.column("status"),
            sql.param(1),
            sql.column("finished_at"),
            sql.param(2),
            sql.column("error"),
            sql.param(3),
            sql.column("id"),
            sql.param(4)
        );
        let params = vec![
            Value::Text(status_name(&status)),
            time(SystemTime::now()),
            error.map_or(Value::Null, |e| Value::Text(e.to_owned())),
            Value::Int(run.0),
        ];
        let changed = self.execute(|| format!("recording the end of run {run}"), vec![(statement, params)]).await?;
        if changed == 0 {
            return Err(Error::fatal(Stage::RunStore, format!("there is no run {run} to finish")));
        }
        Ok(())
    }

    async fn record_backup(&self, run: RunId, backup: &BackupRecord) -> Result<()> {
        let sql = self.sql();
        let statement = format!(
            "UPDATE {} SET {} = {} WHERE {} = {}",
            sql.table("runs"),
            sql.column("backup"),
            sql.param(1),
            sql.column("id"),
            sql.param(2)
        );
        let params = vec![json(backup)?, Value::Int(run.0)];
        self.execute(|| format!("recording the backup of run {run}"), vec![(statement, params)]).await.map(|_| ())
    }

    async fn save_migration_record(&self, record: &MigrationRecord) -> Result<()> {
        let c = &record.counts;
        let params = vec![
            Value::Int(record.run.0),
            Value::Text(record.migration.as_str().to_owned()),
            Value::Text(status_name(&record.status)),
            record.started_at.map_or(Value::Null, time),
            record.finished_at.map_or(Value::Null, time),
            to_i64(c.read),
            to_i64(c.inserted),
            to_i64(c.updated),
            to_i64(c.unchanged),
            to_i64(c.deleted),
            to_i64(c.skipped),
            to_i64(c.rejected),
            to_i64(u64::try_from(record.duration.as_millis()).unwrap_or(u64::MAX)),
            Value::Bool(record.resumed),
            record.error.as_ref().map_or(Value::Null, |e| Value::Text(e.clone())),
        ];
        let sql = self.sql();
        let statement = sql.dialect().upsert(&sql.table("migration_runs"), &RECORD_COLUMNS[..2], &RECORD_COLUMNS);
        let doing = || format!("recording migration `{}` of run {}", record.migration, record.run);
        self.execute(doing, vec![(statement, params)]).await.map(|_| ())
    }

    async fn latest_record(&self, migration: &MigrationName) -> Result<Option<MigrationRecord>> {
        let sql = self.sql();
        let from = format!(
            "{} WHERE {} = {} AND {} NOT IN ({}, {})",
            sql.table("migration_runs"),
            sql.column("migration"),
            sql.param(1),
            sql.column("status"),
            sql.param(2),
            sql.param(3)
        );
        let order = format!("{} DESC", sql.column("run_id"));
        let statement = sql.dialect().select_page(&sql.columns(&RECORD_COLUMNS), &from, &order, Some(4), None);
        let params = vec![
            Value::Text(migration.as_str().to_owned()),
            Value::Text(status_name(&MigrationStatus::Pending)),
            Value::Text(status_name(&MigrationStatus::Skipped)),
            Value::Int(1),
        ];
        let rows = self.query(|| format!("reading the latest record of `{migration}`"), statement, params).await?;
        rows.into_iter().next().map(migration_record).transpose()
    }

    async fn run(&self, run: RunId) -> Result<Option<RunRecord>> {
        let sql = self.sql();
        let statement = format!(
            "SELECT {} FROM {} WHERE {} = {}",
            sql.columns(&RUN_COLUMNS),
            sql.table("runs"),
            sql.column("id"),
            sql.param(1)
        );
        let rows = self.query(|| format!("reading run {run}"), statement, vec![Value::Int(run.0)]).await?;
        rows.into_iter().next().map(run_record).transpose()
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        let sql = self.sql();
        let order = format!("{} DESC", sql.column("id"));
        let statement =
            sql.dialect().select_page(&sql.columns(&RUN_COLUMNS), &sql.table("runs"), &order, Some(1), None);
        let rows = self.query(|| "reading the latest runs".to_owned(), statement, vec![count_value(limit)]).await?;
        rows.into_iter().map(run_record).collect()
    }

    async fn migration_records(&self, run: RunId) -> Result<Vec<MigrationRecord>> {
        let plan = self.run(run).await?.map(|r| r.plan).unwrap_or_default();
        let sql = self.sql();
        let statement = format!(
            "SELECT {} FROM {} WHERE {} = {}",
            sql.columns(&RECORD_COLUMNS),
            sql.table("migration_runs"),
            sql.column("run_id"),
            sql.param(1)
        );
        let doing = || format!("reading the migration records of run {run}");
        let rows = self.query(doing, statement, vec![Value::Int(run.0)]).await?;
        let mut records = rows.into_iter().map(migration_record).collect::<Result<Vec<_>>>()?;
        sort_in_plan_order(&mut records, &plan);
        Ok(records)
    }

    async fn record_rejects(&self, run: RunId, migration: &MigrationName, rejects: &[Reject]) -> Result<()> {
        if rejects.is_empty() {
            return Ok(());
        }
        let now = time(SystemTime::now());
        let mut values = Vec::with_capacity(rejects.len() * REJECT_COLUMNS.len());
        for reject in rejects {
            values.extend([
                Value::Int(run.0),
                Value::Text(migration.as_str().to_owned()),
                Value::Text(status_name(&reject.stage)),
                Value::Text(reject.key.clone()),
                Value::Text(reject.reason.clone()),
                json(&reject.payload)?,
                now.clone(),
            ]);
        }
        // Many rows per statement, as many as the dialect's parameter limit allows.
        let sql = self.sql();
        let width = REJECT_COLUMNS.len();
        let per_statement = (sql.dialect().max_params() / width).clamp(1, 500);
        let statements = values
            .chunks(per_statement * width)
            .map(|chunk| {
                let rows: Vec<String> = (0..chunk.len() / width)
                    .map(|row| format!("({})", sql.params(row * width + 1..=(row + 1) * width)))
                    .collect();
                let statement = format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    sql.table("rejects"),
                    sql.columns(&REJECT_COLUMNS),
                    rows.join(", ")
                );
                (statement, chunk.to_vec())
            })
            .collect();
        let doing = || format!("recording {} rejects of `{migration}` in run {run}", rejects.len());
        self.execute(doing, statements).await.map(|_| ())
    }

    async fn rejects(
        &self,
        run: RunId,
        migration: Option<&MigrationName>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<RejectRecord>> {
        let sql = self.sql();
        let mut from = format!("{} WHERE {} = {}", sql.table("rejects"), sql.column("run_id"), sql.param(1));
        let mut params = vec![Value::Int(run.0)];
        if let Some(migration) = migration {
            from.push_str(&format!(" AND {} = {}", sql.column("migration"), sql.param(2)));
            params.push(Value::Text(migration.as_str().to_owned()));
        }
        let (limit_param, offset_param) = (params.len() + 1, params.len() + 2);
        params.extend([count_value(limit), count_value(offset)]);
        let statement = sql.dialect().select_page(
            &sql.columns(&REJECT_COLUMNS[..6]),
            &from,
            &sql.column("id"),
            Some(limit_param),
            Some(offset_param),
        );
        let rows = self.query(|| format!("reading the rejects of run {run}"), statement, params).await?;
        rows.into_iter()
            .map(|row| {
                let cells = Cells::new(row, "rejects");
                Ok(RejectRecord {
                    run: RunId(cells.int(0)?),
                    migration: MigrationName::new(cells.text(1)?),
                    reject: Reject {
                        stage: cells.status(2)?,
                        key: cells.text(3)?,
                        reason: cells.text(4)?,
                        payload: cells.json_opt(5)?.unwrap_or_default(),
                    },
                })
            })
            .collect()
    }

    /// One `undo_log` row per sequence, in one transaction: `table_name` the table it fills,
    /// `key` `{"sequence": NAME}`, `action` `sequence`, `before_image` the [`Sequence`] as JSON.
    async fn record_sequences(&self, run: RunId, migration: &MigrationName, sequences: &[Sequence]) -> Result<()> {
        if sequences.is_empty() {
            return Ok(());
        }
        let sql = self.sql();
        let insert = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            sql.table("undo_log"),
            sql.columns(&tables::UNDO_LOG[1..]),
            sql.params(1..=tables::UNDO_LOG.len() - 1)
        );
        let mut statements = Vec::with_capacity(sequences.len());
        for sequence in sequences {
            let key = serde_json::json!({ "sequence": sequence.name.to_string() });
            let params = vec![
                Value::Int(run.0),
                Value::Text(migration.as_str().to_owned()),
                Value::Text(sequence.table.to_string()),
                json(&key)?,
                Value::Text(SEQUENCE_ACTION.to_owned()),
                json(sequence)?,
            ];
            statements.push((insert.clone(), params));
        }
        self.execute(|| format!("recording the values of {} sequences before run {run}", sequences.len()), statements)
            .await
            .map(|_| ())
    }

    async fn recorded_sequences(&self, run: RunId, migration: &MigrationName) -> Result<Vec<Sequence>> {
        let sql = self.sql();
        let statement = format!(
            "SELECT {} FROM {} WHERE {} = {} AND {} = {} AND {} = {} ORDER BY {}",
            sql.column("before_image"),
            sql.table("undo_log"),
            sql.column("run_id"),
            sql.param(1),
            sql.column("migration"),
            sql.param(2),
            sql.column("action"),
            sql.param(3),
            sql.column("id")
        );
        let params =
            vec![Value::Int(run.0), Value::Text(migration.as_str().to_owned()), Value::Text(SEQUENCE_ACTION.into())];
        let rows =
            self.query(|| format!("reading the sequence values recorded before run {run}"), statement, params).await?;
        let mut sequences: Vec<Sequence> = Vec::with_capacity(rows.len());
        for row in rows {
            let sequence: Sequence = Cells::new(row, "undo_log").json(0)?;
            if !sequences.iter().any(|s| s.name == sequence.name) {
                sequences.push(sequence);
            }
        }
        Ok(sequences)
    }

    async fn forget_sequences(&self, run: RunId, migration: &MigrationName) -> Result<()> {
        let sql = self.sql();
        let statement = format!(
            "DELETE FROM {} WHERE {} = {} AND {} = {} AND {} = {}",
            sql.table("undo_log"),
            sql.column("run_id"),
            sql.param(1),
            sql.column("migration"),
            sql.param(2),
            sql.column("action"),
            sql.param(3)
        );
        let params =
            vec![Value::Int(run.0), Value::Text(migration.as_str().to_owned()), Value::Text(SEQUENCE_ACTION.into())];
        self.execute(|| format!("forgetting the sequence values recorded before run {run}"), vec![(statement, params)])
            .await
            .map(|_| ())
    }

    async fn checkpoint(&self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        let statement = checkpoints::read_statement(self.connector.dialect());
        let params = vec![Value::Text(migration.as_str().to_owned())];
        let rows = self.query(|| format!("reading the checkpoint of `{migration}`"), statement, params).await?;
        rows.into_iter().next().map(checkpoints::from_row).transpose()
    }

    async fn claim_lease(&self, claim: &LeaseClaim) -> Result<LeaseClaimed> {
        let dialect = self.connector.dialect();
        let doing = || format!("claiming the lease `{}`", claim.scope);
        // Insert when the scope has no row; otherwise take the row over when it is ours or
        // expired. A row deleted or inserted by another claimant between the two is seen on
        // the next round.
        for _ in 0..CLAIM_ROUNDS {
            let current = self.lease(&claim.scope).await?;
            let changed = match &current {
                None => self.execute(doing, vec![(leases::insert(dialect), leases::insert_params(claim))]).await?,
                Some(lease) if lease.holder == claim.holder => {
                    let renewed =
                        self.renew_lease(&claim.scope, &claim.holder, claim.run, claim.now, claim.ttl).await?;
                    u64::from(renewed)
                }
                Some(lease)
                    if lease.is_expired(claim.now) || claim.dead_holder.as_deref() == Some(lease.holder.as_str()) =>
                {
                    self.execute(doing, vec![(leases::take_over(dialect), leases::take_over_params(claim))]).await?
                }
                Some(lease) => return Ok(LeaseClaimed::Held(lease.clone())),
            };
            if changed > 0 {
                let expired = current.filter(|lease| lease.holder != claim.holder);
                return Ok(LeaseClaimed::Taken { expired });
            }
        }
        match self.lease(&claim.scope).await? {
            Some(lease) if lease.holder != claim.holder => Ok(LeaseClaimed::Held(lease)),
            _ => Err(Error::transient(
                Stage::RunStore,
                format!("the lease `{}` changed hands {CLAIM_ROUNDS} times while being claimed", claim.scope),
            )),
        }
    }

    async fn renew_lease(
        &self,
        scope: &str,
        holder: &str,
        run: Option<RunId>,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<bool> {
        let statement = leases::renew(self.connector.dialect());
        let params = leases::renew_params(scope, holder, run, now, ttl);
        let changed = self.execute(|| format!("renewing the lease `{scope}`"), vec![(statement, params)]).await?;
        Ok(changed > 0)
    }

    async fn release_lease(&self, scope: &str, holder: &str) -> Result<()> {
        let statement = leases::release(self.connector.dialect());
        let params = vec![Value::Text(scope.to_owned()), Value::Text(holder.to_owned())];
        self.execute(|| format!("releasing the lease `{scope}`"), vec![(statement, params)]).await.map(|_| ())
    }

    async fn lease(&self, scope: &str) -> Result<Option<LeaseRecord>> {
        let statement = leases::read(self.connector.dialect());
        let rows = self
            .query(|| format!("reading the lease `{scope}`"), statement, vec![Value::Text(scope.to_owned())])
            .await?;
        rows.into_iter().next().map(leases::from_row).transpose()
    }
}

/// How many times a claim re-reads a lease row that changed under it before giving up.
const CLAIM_ROUNDS: usize = 3;
