//! A [`Connect`] and [`Executor`] without a server: every statement is recorded, and the
//! answers come from a [`Script`] of canned result sets, row counts and errors. The adapter's
//! real flows (pre-flight decisions, catalog reading, MERGE counts, retries after a broken
//! session, undo logging) run against it in tests.
//!
//! ```
//! use dmf_mssql::executor::{Response, Script};
//! use tiberius::ColumnData;
//!
//! let script = Script::new();
//! // The first statement containing "FROM sys.databases" gets this row.
//! script.on("FROM sys.databases", Response::rows(vec![vec![ColumnData::String(Some("ONLINE".into()))]]));
//! let connector = script.connector("sa@test:1433/Sales", "Sales");
//! # let _ = connector;
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use dmf_core::Value;
use tiberius::{ColumnData, TokenRow};

use super::{BulkOptions, Connect, Executor, SqlError, SqlRow};

/// A canned answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// Result sets (a batch may return several; `query` answers with the first).
    Sets(Vec<Vec<SqlRow>>),
    /// Rows affected (for `execute` and `bulk_insert`).
    Affected(u64),
    /// The statement fails.
    Fail(SqlError),
}

impl Response {
    /// One result set of `rows`.
    pub fn rows(rows: Vec<Vec<ColumnData<'static>>>) -> Self {
        Self::Sets(vec![rows.into_iter().map(SqlRow::new).collect()])
    }
}

/// What a statement was sent as.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordedKind {
    /// A session was opened (`sql` is empty).
    Session,
    /// An admin session was opened (`sql` is empty).
    AdminSession,
    /// [`Executor::query`].
    Query,
    /// [`Executor::execute`].
    Execute,
    /// [`Executor::batch`].
    Batch,
    /// [`Executor::bulk_insert`]; `sql` reads `INSERT BULK table (columns)`.
    BulkInsert {
        /// The options.
        options: BulkOptions,
        /// The rows, as they would be sent.
        rows: Vec<Vec<ColumnData<'static>>>,
    },
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Which session (numbered from 1 in the order they were opened).
    pub session: usize,
    /// How it was sent.
    pub kind: RecordedKind,
    /// The statement.
    pub sql: String,
    /// Its parameters (`@P1`…).
    pub params: Vec<Value>,
}

struct Rule {
    pattern: String,
    /// The rule answers only a statement whose session sent one containing this just before.
    after: Option<String>,
    responses: VecDeque<Response>,
    sticky: Option<Response>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    log: Vec<Recorded>,
    sessions: usize,
    /// Sessions opened and not dropped yet.
    open: usize,
    connect_failures: VecDeque<SqlError>,
}

/// The script: rules answering statements, and the log of everything sent. Cheap to clone
/// (shared).
#[derive(Clone, Default)]
pub struct Script {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script").field("recorded", &self.lock().log.len()).finish_non_exhaustive()
    }
}

impl Script {
    /// An empty script: queries return no rows, writes affect nothing, bulk loads load every
    /// row.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next statement containing `pattern` gets `response` (once). Several responses for
    /// one pattern are given in order.
    pub fn on(&self, pattern: &str, response: Response) -> &Self {
        let mut state = self.lock();
        match state.rules.iter_mut().find(|r| r.pattern == pattern && r.after.is_none() && r.sticky.is_none()) {
            Some(rule) => rule.responses.push_back(response),
            None => state.rules.push(Rule {
                pattern: pattern.to_owned(),
                after: None,
                responses: VecDeque::from([response]),
                sticky: None,
            }),
        }
        self
    }

    /// The next statement containing `pattern` whose session sent a statement containing
    /// `after` just before it gets `response` (once). For statements told apart only by what
    /// came before them, such as the `COMMIT TRANSACTION;` of a loader's batch (after its
    /// checkpoint write) among those of the run store.
    pub fn on_after(&self, after: &str, pattern: &str, response: Response) -> &Self {
        self.lock().rules.push(Rule {
            pattern: pattern.to_owned(),
            after: Some(after.to_owned()),
            responses: VecDeque::from([response]),
            sticky: None,
        });
        self
    }

    /// Every statement containing `pattern` gets `response` (after the one-time responses of
    /// earlier rules for it are used up).
    pub fn always(&self, pattern: &str, response: Response) -> &Self {
        self.lock().rules.push(Rule {
            pattern: pattern.to_owned(),
            after: None,
            responses: VecDeque::new(),
            sticky: Some(response),
        });
        self
    }

    /// The next session fails to open with `error`.
    pub fn fail_next_session(&self, error: SqlError) -> &Self {
        self.lock().connect_failures.push_back(error);
        self
    }

    /// Everything recorded so far.
    pub fn log(&self) -> Vec<Recorded> {
        self.lock().log.clone()
    }

    /// The statements sent so far (no session events), in order.
    pub fn statements(&self) -> Vec<String> {
        self.lock()
            .log
            .iter()
            .filter(|r| !matches!(r.kind, RecordedKind::Session | RecordedKind::AdminSession))
            .map(|r| r.sql.clone())
            .collect()
    }

    /// Forgets the log (the rules stay).
    pub fn clear_log(&self) {
        self.lock().log.clear();
    }

    /// How many sessions were opened.
    pub fn sessions(&self) -> usize {
        self.lock().sessions
    }

    /// How many sessions are open now (opened and not dropped): what a pool would have
    /// checked out.
    pub fn open_sessions(&self) -> usize {
        self.lock().open
    }

    /// A connector whose sessions run against this script.
    pub fn connector(&self, display_name: &str, database: &str) -> ScriptedConnector {
        ScriptedConnector { script: self.clone(), display_name: display_name.to_owned(), database: database.to_owned() }
    }

    fn answer(&self, session: usize, kind: RecordedKind, sql: &str, params: &[Value]) -> Option<Response> {
        let mut state = self.lock();
        let previous = state.log.iter().rev().find(|r| r.session == session).map(|r| r.sql.clone()).unwrap_or_default();
        state.log.push(Recorded { session, kind, sql: sql.to_owned(), params: params.to_vec() });
        for rule in state.rules.iter_mut() {
            if !sql.contains(&rule.pattern)
                || rule.after.as_ref().is_some_and(|after| !previous.contains(after.as_str()))
            {
                continue;
            }
            if let Some(response) = rule.responses.pop_front() {
                return Some(response);
            }
            if let Some(response) = &rule.sticky {
                return Some(response.clone());
            }
        }
        None
    }
}

/// Opens [`ScriptedExecutor`]s on a [`Script`].
#[derive(Debug, Clone)]
pub struct ScriptedConnector {
    script: Script,
    display_name: String,
    database: String,
}

impl ScriptedConnector {
    /// The script behind it.
    pub fn script(&self) -> &Script {
        &self.script
    }

    fn open(&self, kind: RecordedKind) -> Result<Box<dyn Executor>, SqlError> {
        let mut state = self.script.lock();
        state.sessions += 1;
        let session = state.sessions;
        state.log.push(Recorded { session, kind, sql: String::new(), params: Vec::new() });
        if let Some(error) = state.connect_failures.pop_front() {
            return Err(error);
        }
        state.open += 1;
        Ok(Box::new(ScriptedExecutor { script: self.script.clone(), session }))
    }
}

#[async_trait]
impl Connect for ScriptedConnector {
    async fn session(&self) -> Result<Box<dyn Executor>, SqlError> {
        self.open(RecordedKind::Session)
    }

    async fn admin_session(&self) -> Result<Box<dyn Executor>, SqlError> {
        self.open(RecordedKind::AdminSession)
    }

    fn display_name(&self) -> String {
        self.display_name.clone()
    }

    fn database(&self) -> String {
        self.database.clone()
    }
}

/// One scripted session.
#[derive(Debug)]
pub struct ScriptedExecutor {
    script: Script,
    session: usize,
}

impl Drop for ScriptedExecutor {
    fn drop(&mut self) {
        let mut state = self.script.lock();
        state.open = state.open.saturating_sub(1);
    }
}

#[async_trait]
impl Executor for ScriptedExecutor {
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<SqlRow>, SqlError> {
        match self.script.answer(self.session, RecordedKind::Query, sql, params) {
            Some(Response::Sets(mut sets)) => Ok(if sets.is_empty() { Vec::new() } else { sets.swap_remove(0) }),
            Some(Response::Fail(error)) => Err(error),
            Some(Response::Affected(_)) | None => Ok(Vec::new()),
        }
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
        match self.script.answer(self.session, RecordedKind::Execute, sql, params) {
            Some(Response::Affected(n)) => Ok(n),
            Some(Response::Sets(sets)) => Ok(sets.first().map_or(0, |rows| rows.len() as u64)),
            Some(Response::Fail(error)) => Err(error),
            None => Ok(0),
        }
    }

    async fn batch(&mut self, sql: &str) -> Result<Vec<Vec<SqlRow>>, SqlError> {
        match self.script.answer(self.session, RecordedKind::Batch, sql, &[]) {
            Some(Response::Sets(sets)) => Ok(sets),
            Some(Response::Fail(error)) => Err(error),
            Some(Response::Affected(_)) | None => Ok(Vec::new()),
        }
    }

    async fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        options: BulkOptions,
        rows: Vec<TokenRow<'static>>,
    ) -> Result<u64, SqlError> {
        let count = rows.len() as u64;
        let rows: Vec<Vec<ColumnData<'static>>> = rows.into_iter().map(|row| row.into_iter().collect()).collect();
        let sql = format!("INSERT BULK {table} ({})", columns.join(", "));
        match self.script.answer(self.session, RecordedKind::BulkInsert { options, rows }, &sql, &[]) {
            Some(Response::Affected(n)) => Ok(n),
            Some(Response::Fail(error)) => Err(error),
            Some(Response::Sets(_)) | None => Ok(count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn statements_are_recorded_and_answered_by_pattern_in_order() {
        let script = Script::new();
        script
            .on("FROM t", Response::rows(vec![vec![ColumnData::I32(Some(1))]]))
            .on("FROM t", Response::Fail(SqlError::server(1205, "deadlock")))
            .always("UPDATE", Response::Affected(3));
        let connector = script.connector("sa@h:1433/db", "db");
        let mut session = connector.session().await.unwrap();
        assert_eq!(session.query("SELECT a FROM t", &[Value::Int(5)]).await.unwrap().len(), 1);
        assert_eq!(session.query("SELECT a FROM t", &[]).await.unwrap_err().number(), Some(1205));
        assert!(session.query("SELECT a FROM t", &[]).await.unwrap().is_empty(), "default: no rows");
        assert_eq!(session.execute("UPDATE t SET a = 1", &[]).await.unwrap(), 3);
        assert_eq!(session.execute("UPDATE t SET a = 2", &[]).await.unwrap(), 3);
        let mut row = TokenRow::new();
        row.push(ColumnData::I32(Some(9)));
        let loaded = session.bulk_insert("#s", &["[a]".into()], BulkOptions::default(), vec![row]).await.unwrap();
        assert_eq!(loaded, 1);
        assert_eq!(script.sessions(), 1);
        let log = script.log();
        assert_eq!(log[0].kind, RecordedKind::Session);
        assert_eq!(log[1].params, vec![Value::Int(5)]);
        assert_eq!(script.statements().last().unwrap(), "INSERT BULK #s ([a])");
        assert!(
            matches!(&log.last().unwrap().kind, RecordedKind::BulkInsert { rows, .. } if rows == &vec![vec![ColumnData::I32(Some(9))]])
        );
    }

    #[tokio::test]
    async fn a_rule_can_answer_only_the_statement_that_follows_another_in_its_session() {
        let script = Script::new();
        script.on_after("SAVE", "COMMIT", Response::Fail(SqlError::server(1205, "deadlock")));
        let connector = script.connector("x", "db");
        let (mut first, mut second) = (connector.session().await.unwrap(), connector.session().await.unwrap());
        assert!(first.batch("COMMIT").await.is_ok(), "not after SAVE");
        first.execute("SAVE 1", &[]).await.unwrap();
        assert!(second.batch("COMMIT").await.is_ok(), "SAVE came before it in another session");
        assert_eq!(first.batch("COMMIT").await.unwrap_err().number(), Some(1205));
        first.execute("SAVE 2", &[]).await.unwrap();
        assert!(first.batch("COMMIT").await.is_ok(), "once");
    }

    #[tokio::test]
    async fn sessions_can_fail_to_open() {
        let script = Script::new();
        script
            .fail_next_session(SqlError::Io { kind: std::io::ErrorKind::ConnectionRefused, message: "refused".into() });
        let connector = script.connector("x", "db");
        assert!(connector.session().await.is_err());
        assert!(connector.session().await.is_ok());
        assert_eq!(script.sessions(), 2);
    }
}
