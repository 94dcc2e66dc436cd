//! The fast path of a `full` load on SQL Server: bulk loads without `CHECK_CONSTRAINTS`, a
//! set-based proof by dmf-core, then the constraints put back as they were.
//!
//! A bulk load without `CHECK_CONSTRAINTS` checks neither the table's foreign keys nor its
//! CHECK constraints, and SQL Server then marks them not trusted (`is_not_trusted = 1`): the
//! optimizer stops relying on them. So DMF remembers, per table, which enabled constraints
//! were trusted before its load ([`TrustMemory`]: when the target is asked
//! [`foreign_key_trust`](dmf_core::sync::Database::foreign_key_trust) and again when a
//! loader opens its session), and once the proof found no orphan it re-validates exactly
//! those that are now not trusted ([`restore`]: `ALTER TABLE … WITH CHECK CHECK
//! CONSTRAINT`, one per constraint, validated by SQL Server over every row). That needs ALTER
//! on the table: a table with trusted constraints the login may not ALTER keeps per-row
//! checks. CHECK constraints are proved by that re-validation alone; a row breaking one fails
//! the run, naming the constraint and the table.
//!
//! Trade-off: the memory lives in the database handle, so only this process knows what was
//! trusted before. A constraint that was not trusted before the load stays so (DMF never
//! trusts what the target did not), which also means that after a process died between a
//! load and the re-validation, the next process sees those constraints as already not
//! trusted and leaves them: pre-flight lists every constraint found not trusted before the
//! load, and the failure messages give the statement to run by hand. Re-trusting every
//! not-trusted constraint of the loaded tables instead would have survived that, but would
//! change a target whose owner left a constraint untrusted on purpose.
//!
//! Insert triggers: a bulk load fires them only with `FIRE_TRIGGERS`. The per-row path sets
//! it; the fast path does not, so tables with enabled insert triggers keep the per-row path
//! unless the user accepts that the load will not fire them (`skip_triggers`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use dmf_core::catalog::TableName;
use dmf_core::sync::ForeignKeyTrust;
use dmf_core::{Error, ErrorKind, Result, Stage, Value};

use crate::database::Shared;
use crate::error::to_dmf_error;
use crate::executor::{Executor, SqlError, SqlRow};
use crate::sql::qualified;
use crate::sql::trust as sql;

/// A foreign key or CHECK constraint of a table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Constraint {
    /// `FOREIGN KEY` or `CHECK`.
    pub kind: String,
    /// Its name.
    pub name: String,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.kind == "CHECK" { "CHECK constraint" } else { "foreign key" };
        write!(f, "{kind} `{}`", self.name)
    }
}

/// An enabled constraint and whether SQL Server trusts it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConstraintState {
    pub constraint: Constraint,
    pub trusted: bool,
}

/// Which constraints were trusted before DMF's loads skipped their checks, per table, for as
/// long as the database handle lives. Only ever grows: a constraint once seen trusted stays
/// remembered, so a second run in the same process still re-validates what the first run's
/// failed load left untrusted.
#[derive(Debug, Default)]
pub(crate) struct TrustMemory {
    trusted: Mutex<BTreeMap<TableName, BTreeSet<Constraint>>>,
}

impl TrustMemory {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<TableName, BTreeSet<Constraint>>> {
        self.trusted.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Remembers the constraints of `table` trusted in `states`.
    pub(crate) fn remember(&self, table: &TableName, states: &[ConstraintState]) {
        let trusted: Vec<Constraint> = states.iter().filter(|s| s.trusted).map(|s| s.constraint.clone()).collect();
        if !trusted.is_empty() {
            self.lock().entry(table.clone()).or_default().extend(trusted);
        }
    }

    /// The constraints of `table` remembered as trusted before a load.
    pub(crate) fn trusted_before(&self, table: &TableName) -> BTreeSet<Constraint> {
        self.lock().get(table).cloned().unwrap_or_default()
    }
}

/// The enabled foreign keys and CHECK constraints of `table`, with their trust.
pub(crate) async fn constraints(
    executor: &mut dyn Executor,
    table: &TableName,
) -> std::result::Result<Vec<ConstraintState>, SqlError> {
    let rows = executor.query(sql::CONSTRAINTS, &[Value::Text(qualified(table))]).await?;
    rows.iter()
        .map(|row| {
            Ok(ConstraintState {
                constraint: Constraint { kind: row.text_required(0)?, name: row.text_required(1)? },
                trusted: !row.bool(2)?.unwrap_or(true),
            })
        })
        .collect()
}

/// What one table needs for the fast path.
struct TableFacts {
    table: TableName,
    may_alter: bool,
    triggers: Vec<String>,
    constraints: Vec<ConstraintState>,
}

async fn table_facts(
    executor: &mut dyn Executor,
    table: &TableName,
) -> std::result::Result<(TableFacts, String), SqlError> {
    let name = Value::Text(qualified(table));
    let rows = executor.query(sql::MAY_ALTER, std::slice::from_ref(&name)).await?;
    let (may_alter, user) = match rows.first() {
        Some(row) => (may_alter(row)?, row.text(1)?.unwrap_or_default()),
        None => (false, String::new()),
    };
    let triggers = executor
        .query(sql::INSERT_TRIGGERS, std::slice::from_ref(&name))
        .await?
        .iter()
        .map(|row| row.text_required(0))
        .collect::<std::result::Result<_, _>>()?;
    let constraints = constraints(executor, table).await?;
    Ok((TableFacts { table: table.clone(), may_alter, triggers, constraints }, user))
}

/// Decides for `tables`: allowed unless the login may ALTER none of the tables whose trusted
/// constraints it would have to re-validate; tables it may not ALTER, and tables with enabled
/// insert triggers (unless `skip_triggers`), keep per-row checks. Remembers which constraints
/// are trusted now.
pub(crate) async fn decide(shared: &Shared, tables: &[TableName], skip_triggers: bool) -> Result<ForeignKeyTrust> {
    let server = shared.name();
    let doing = || format!("asking {server} whether loads may skip per-row constraint checks");
    let mut session = shared.connector.session().await.map_err(|e| to_dmf_error(e, Stage::Preflight, doing()))?;
    let mut facts = Vec::with_capacity(tables.len());
    let mut user = String::new();
    for table in tables {
        let (table_facts, table_user) =
            table_facts(session.as_mut(), table).await.map_err(|e| to_dmf_error(e, Stage::Preflight, doing()))?;
        shared.trust.remember(table, &table_facts.constraints);
        if user.is_empty() {
            user = table_user;
        }
        facts.push(table_facts);
    }
    Ok(decision(&facts, &user, skip_triggers))
}

/// [`decide`]'s verdict from the facts it read.
fn decision(facts: &[TableFacts], user: &str, skip_triggers: bool) -> ForeignKeyTrust {
    let user = if user.is_empty() { "the login" } else { user };
    let needs_alter: Vec<&TableFacts> = facts.iter().filter(|f| f.constraints.iter().any(|c| c.trusted)).collect();
    let refused: Vec<&TableFacts> = needs_alter.iter().copied().filter(|f| !f.may_alter).collect();
    if !refused.is_empty() && refused.len() == needs_alter.len() {
        let names: Vec<String> = refused.iter().map(|f| f.table.to_string()).collect();
        return ForeignKeyTrust {
            allowed: false,
            reason: format!(
                "database user {user} has no ALTER permission on {}: a bulk load without CHECK_CONSTRAINTS leaves \
                 their constraints not trusted and DMF could not re-validate them (GRANT ALTER ON <table> TO [{user}] \
                 allows it)",
                names.join(", ")
            ),
            per_row_tables: Vec::new(),
            silences_triggers: true,
        };
    }
    let mut per_row_tables = Vec::new();
    let mut silenced = Vec::new();
    let mut untrusted_before = Vec::new();
    let mut to_restore = 0;
    for table in facts {
        if refused.iter().any(|r| r.table == table.table) {
            per_row_tables.push((
                table.table.clone(),
                format!(
                    "database user {user} has no ALTER permission on it, which re-validating its constraints after \
                     a bulk load without CHECK_CONSTRAINTS needs"
                ),
            ));
            continue;
        }
        if !table.triggers.is_empty() {
            let triggers = table.triggers.join(", ");
            if skip_triggers {
                silenced.push(format!("{} ({triggers})", table.table));
            } else {
                per_row_tables.push((
                    table.table.clone(),
                    format!(
                        "its insert triggers {triggers} would not fire during the load (--skip-target-triggers allows \
                         it)"
                    ),
                ));
                continue;
            }
        }
        to_restore += table.constraints.iter().filter(|c| c.trusted).count();
        untrusted_before.extend(
            table.constraints.iter().filter(|c| !c.trusted).map(|c| format!("{} of {}", c.constraint, table.table)),
        );
    }
    let mut reason = format!(
        "bulk loads without CHECK_CONSTRAINTS, then DMF re-validates the {to_restore} trusted foreign key(s) and CHECK \
         constraint(s) they mark not trusted (ALTER TABLE … WITH CHECK CHECK CONSTRAINT, as user {user})"
    );
    if !silenced.is_empty() {
        reason.push_str(&format!("; these insert triggers will not fire: {}", silenced.join(", ")));
    }
    if !untrusted_before.is_empty() {
        reason.push_str(&format!(
            "; not trusted already, so left not trusted: {} (ALTER TABLE … WITH CHECK CHECK CONSTRAINT trusts one \
             again)",
            untrusted_before.join(", ")
        ));
    }
    ForeignKeyTrust { allowed: true, reason, per_row_tables, silences_triggers: true }
}

/// Re-validates the constraints of `tables` that were trusted before DMF's loads and are not
/// now, one `ALTER TABLE … WITH CHECK CHECK CONSTRAINT` each, on a session of its own (a new
/// one after any error). Every constraint is tried; rows breaking some fail the run naming
/// each constraint, its table and SQL Server's message; any other error stops at once.
pub(crate) async fn restore(shared: &Shared, tables: &[TableName]) -> Result<()> {
    let remembered: Vec<(&TableName, BTreeSet<Constraint>)> =
        tables.iter().map(|t| (t, shared.trust.trusted_before(t))).filter(|(_, c)| !c.is_empty()).collect();
    if remembered.is_empty() {
        return Ok(());
    }
    let server = shared.name();
    let mut session: Option<Box<dyn Executor>> = None;
    let mut broken = Vec::new();
    let mut pending = Vec::new();
    for (table, before) in remembered {
        let executor = open(shared, &mut session).await?;
        let now = match constraints(executor, table).await {
            Ok(now) => now,
            Err(error) => {
                let doing = format!("reading the constraints of {table} in {server} to trust them again");
                return Err(to_dmf_error(error, Stage::Validate, doing));
            }
        };
        let untrusted: Vec<Constraint> =
            now.into_iter().filter(|s| !s.trusted && before.contains(&s.constraint)).map(|s| s.constraint).collect();
        pending.extend(untrusted.iter().map(|c| (table.clone(), c.clone())));
    }
    let statements: Vec<String> = pending.iter().map(|(t, c)| sql::retrust(t, &c.name)).collect();
    for (index, ((table, constraint), statement)) in pending.iter().zip(&statements).enumerate() {
        let executor = open(shared, &mut session).await?;
        match executor.batch(statement).await {
            Ok(_) => tracing::info!(%table, constraint = %constraint.name, "constraint trusted again"),
            Err(error) => {
                session = None;
                if error.number() == Some(547) {
                    broken.push(format!("{constraint} of {table}: {error}"));
                    continue;
                }
                let still: Vec<&str> = statements[index..].iter().map(String::as_str).collect();
                let message = format!(
                    "re-validating {constraint} of {table} in {server} after a bulk load without CHECK_CONSTRAINTS: \
                     {error}{}; not trusted until then: {}",
                    permission_hint(&error),
                    still.join("; ")
                );
                return Err(Error::with_source(Stage::Validate, error_kind(&error), message, error));
            }
        }
    }
    if broken.is_empty() {
        return Ok(());
    }
    Err(Error::fatal(
        Stage::Validate,
        format!(
            "the target's constraints do not hold after the load: {}; the loaded rows breaking them came from the \
             source (a per-row load would have rejected them); these constraints stay not trusted. Roll the run back \
             (--rollback last), fix the source, and sync again",
            broken.join("; ")
        ),
    ))
}

/// The open session, opening one when there is none.
async fn open<'a>(shared: &Shared, session: &'a mut Option<Box<dyn Executor>>) -> Result<&'a mut dyn Executor> {
    if session.is_none() {
        let opened = shared.connector.session().await.map_err(|e| {
            to_dmf_error(e, Stage::Validate, format!("cannot connect to SQL Server at {}", shared.name()))
        })?;
        *session = Some(opened);
    }
    match session.as_deref_mut() {
        Some(executor) => Ok(executor),
        None => Err(Error::transient(Stage::Validate, "the SQL Server session closed while opening it")),
    }
}

/// Permission errors say what re-validating needs.
fn permission_hint(error: &SqlError) -> &'static str {
    match error.number() {
        Some(229 | 1088 | 4902) => "; re-validating a constraint needs ALTER permission on its table",
        _ => "",
    }
}

/// The error's kind, except that a permission problem is fatal whatever the number says.
fn error_kind(error: &SqlError) -> ErrorKind {
    match error.number() {
        Some(1088 | 4902) => ErrorKind::Fatal,
        _ => crate::error::error_kind(error),
    }
}

/// A row of [`sql::MAY_ALTER`] says yes (NULL, when the name did not resolve, is no).
fn may_alter(row: &SqlRow) -> std::result::Result<bool, SqlError> {
    Ok(row.int(0)? == Some(1))
}

#[cfg(test)]
mod tests {
    use tiberius::ColumnData;

    use super::*;

    fn state(kind: &str, name: &str, trusted: bool) -> ConstraintState {
        ConstraintState { constraint: Constraint { kind: kind.into(), name: name.into() }, trusted }
    }

    fn facts(table: &str, may_alter: bool, triggers: &[&str], constraints: Vec<ConstraintState>) -> TableFacts {
        TableFacts {
            table: TableName::new(Some("dbo"), table),
            may_alter,
            triggers: triggers.iter().map(|t| t.to_string()).collect(),
            constraints,
        }
    }

    #[test]
    fn the_memory_keeps_what_was_ever_trusted() {
        let memory = TrustMemory::default();
        let orders = TableName::new(Some("dbo"), "Orders");
        memory.remember(&orders, &[state("FOREIGN KEY", "FK_a", true), state("CHECK", "CK_b", false)]);
        // After a failed load left FK_a untrusted, a second snapshot does not forget it.
        memory.remember(&orders, &[state("FOREIGN KEY", "FK_a", false), state("CHECK", "CK_c", true)]);
        let names: Vec<String> = memory.trusted_before(&orders).into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["CK_c", "FK_a"]);
        assert!(memory.trusted_before(&TableName::new(Some("dbo"), "other")).is_empty());
    }

    #[test]
    fn no_alter_anywhere_it_is_needed_refuses_the_fast_path() {
        let verdict = decision(
            &[
                facts("Orders", false, &[], vec![state("FOREIGN KEY", "FK_o", true)]),
                facts("Notes", false, &[], vec![]),
            ],
            "loader",
            false,
        );
        assert!(!verdict.allowed);
        assert_eq!(
            verdict.reason,
            "database user loader has no ALTER permission on dbo.Orders: a bulk load without CHECK_CONSTRAINTS leaves \
             their constraints not trusted and DMF could not re-validate them (GRANT ALTER ON <table> TO [loader] \
             allows it)"
        );
    }

    #[test]
    fn tables_without_alter_or_with_triggers_stay_per_row() {
        let verdict = decision(
            &[
                facts("Customers", true, &[], vec![state("CHECK", "CK_c", true)]),
                facts("Orders", false, &[], vec![state("FOREIGN KEY", "FK_o", true)]),
                facts("Audit", true, &["trg_audit"], vec![state("FOREIGN KEY", "FK_a", true)]),
                facts("Lines", true, &[], vec![state("FOREIGN KEY", "FK_l", true), state("CHECK", "CK_l", false)]),
            ],
            "loader",
            false,
        );
        assert!(verdict.allowed);
        let kept: Vec<String> = verdict.per_row_tables.iter().map(|(t, _)| t.to_string()).collect();
        assert_eq!(kept, ["dbo.Orders", "dbo.Audit"]);
        assert!(verdict.per_row_tables[0].1.contains("no ALTER permission on it"), "{:?}", verdict.per_row_tables);
        assert_eq!(
            verdict.per_row_tables[1].1,
            "its insert triggers trg_audit would not fire during the load (--skip-target-triggers allows it)"
        );
        assert!(
            verdict.reason.starts_with("bulk loads without CHECK_CONSTRAINTS, then DMF re-validates the 2 trusted")
        );
        assert!(
            verdict.reason.contains("not trusted already, so left not trusted: CHECK constraint `CK_l` of dbo.Lines"),
            "{}",
            verdict.reason
        );
    }

    #[test]
    fn skipping_triggers_is_said_in_the_reason() {
        let verdict =
            decision(&[facts("Audit", true, &["trg_a", "trg_b"], vec![state("FOREIGN KEY", "FK_a", true)])], "", true);
        assert!(verdict.allowed);
        assert!(verdict.per_row_tables.is_empty());
        assert!(verdict.reason.contains("as user the login"), "{}", verdict.reason);
        assert!(verdict.reason.ends_with("these insert triggers will not fire: dbo.Audit (trg_a, trg_b)"));
    }

    #[test]
    fn tables_without_trusted_constraints_need_no_alter() {
        let verdict = decision(&[facts("Notes", false, &[], vec![state("CHECK", "CK_n", false)])], "loader", false);
        assert!(verdict.allowed, "{}", verdict.reason);
        assert!(verdict.per_row_tables.is_empty());
    }

    #[test]
    fn permission_answers_read_one_as_yes_only() {
        let row = |v: Option<i32>| SqlRow::new(vec![ColumnData::I32(v), ColumnData::String(Some("u".into()))]);
        assert!(may_alter(&row(Some(1))).unwrap());
        assert!(!may_alter(&row(Some(0))).unwrap());
        assert!(!may_alter(&row(None)).unwrap(), "NULL: the name did not resolve");
    }
}
