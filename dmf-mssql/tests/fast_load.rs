//! The fast path of a `full` sync into SQL Server, as whole `SyncJob` runs between two scripted
//! databases: bulk loads without `CHECK_CONSTRAINTS` (and without `FIRE_TRIGGERS`), then one
//! orphan query per foreign key, then `ALTER TABLE … WITH CHECK CHECK CONSTRAINT` for exactly
//! the constraints that were trusted before and are not now. A table with an insert trigger
//! stays per row (checked, triggers fired); a login without ALTER keeps every table per row;
//! an orphan fails the run naming the foreign key and the key, and trusts nothing again; a row
//! breaking a CHECK constraint fails the run at the re-validation, naming it.
//!
//! The answers are written from SQL Server's documentation, not recorded from a server.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::*;
use dmf_core::catalog::TableName;
use dmf_core::sync::{CATCH_UP, Database, FK_CHECK, SyncJob, SyncMode, TrustedWrites};
use dmf_core::{EngineConfig, RunRequest, RunSummary};
use dmf_mssql::executor::{Recorded, RecordedKind, Response, Script};
use dmf_mssql::{BulkOptions, MssqlDatabase, MssqlOptions, SqlError};
use tiberius::ColumnData;

const CONSTRAINTS: &str = "FROM sys.check_constraints AS ck";
const TRIGGERS: &str = "WHERE tr.parent_id = OBJECT_ID(@P1)";
/// The catalog's list of every trigger (pre-flight's `target triggers` line).
const ALL_TRIGGERS: &str = "JOIN sys.trigger_events AS te ON te.object_id = tr.object_id";
const MAY_ALTER: &str = "HAS_PERMS_BY_NAME(@P1, N'OBJECT', N'ALTER')";
const ORPHANS: &str = "SELECT COUNT_BIG(*) FROM [dbo].[orders] AS c";
const ORPHAN_KEYS: &str = "SELECT c.[id] FROM [dbo].[orders] AS c";
const RETRUST_FK: &str = "ALTER TABLE [dbo].[orders] WITH CHECK CHECK CONSTRAINT [FK_orders_customers]";
const RETRUST_CHECK: &str = "ALTER TABLE [dbo].[orders] WITH CHECK CHECK CONSTRAINT [CK_orders_total]";

/// A `COLUMNS` row of the catalog: an `int`, or an `nvarchar(50)`.
fn catalog_column(object_id: i32, table: &str, name: &str, nullable: bool, nvarchar: bool) -> Vec<ColumnData<'static>> {
    let (type_name, length) = if nvarchar { ("nvarchar", 100) } else { ("int", 4) };
    common::catalog_column(object_id, table, name, type_name, length, nullable)
}

/// dbo.customers (id, name) and dbo.orders (id, customer_id → customers, total), on either side.
fn catalog(script: &Script) {
    script.always(
        pattern::CATALOG_COLUMNS,
        Response::rows(vec![
            catalog_column(1, "customers", "id", false, false),
            catalog_column(1, "customers", "name", true, true),
            catalog_column(2, "orders", "id", false, false),
            catalog_column(2, "orders", "customer_id", true, false),
            catalog_column(2, "orders", "total", true, false),
        ]),
    );
    script.always(
        pattern::CATALOG_KEYS,
        Response::rows(vec![
            vec![int(1), int(1), flag(true), text("id")],
            vec![int(2), int(1), flag(true), text("id")],
        ]),
    );
    // More than `pattern::CATALOG_FKS`, which the constraints query contains too.
    script.always(
        "SELECT fk.parent_object_id, fk.object_id",
        Response::rows(vec![vec![
            int(2),
            int(3),
            text("FK_orders_customers"),
            text("dbo"),
            text("customers"),
            text("customer_id"),
            text("id"),
            flag(false),
            flag(false),
        ]]),
    );
}

/// The source: two customers, one order of customer 1 (id 10).
fn source() -> Arc<MssqlDatabase> {
    let (script, db) = scripted(MssqlOptions::default());
    healthy_standalone(&script);
    catalog(&script);
    script.always("FROM [dbo].[customers]", Response::rows(vec![vec![int(1), text("Ann")], vec![int(2), text("Bo")]]));
    script.always("FROM [dbo].[orders]", Response::rows(vec![vec![int(10), int(1), int(5)]]));
    db
}

fn constraint(kind: &str, name: &str, trusted: bool) -> Vec<ColumnData<'static>> {
    vec![text(kind), text(name), flag(!trusted)]
}

/// How the target answers the trust questions.
struct Target {
    may_alter: bool,
    /// CK_orders_total is trusted before the load (else it is not trusted already).
    check_trusted: bool,
}

/// The target: the same tables, empty; customers has an insert trigger and a trusted CHECK
/// constraint, orders a trusted foreign key and a CHECK constraint.
fn target(answers: Target) -> (Script, Arc<MssqlDatabase>) {
    let (script, db) = scripted(MssqlOptions::default());
    healthy_standalone(&script);
    catalog(&script);
    control_tables(&script, true, true);
    script.always(pattern::START_RUN, Response::rows(vec![vec![big(1)]]));
    script.always(pattern::UPDATE_RUN, Response::Affected(1));
    script.always(
        pattern::TABLE_COLUMNS,
        Response::rows(vec![
            column("id", "int", 4, 10, 0, false, false, false, None),
            column("name", "nvarchar", 200, 0, 0, true, false, false, Some("Latin1_General_CI_AS")),
            column("customer_id", "int", 4, 10, 0, true, false, false, None),
            column("total", "int", 4, 10, 0, true, false, false, None),
        ]),
    );
    let user = if answers.may_alter { "dmf_loader" } else { "reader" };
    script.always(MAY_ALTER, Response::rows(vec![vec![int(i32::from(answers.may_alter)), text(user)]]));
    script.always(
        ALL_TRIGGERS,
        Response::rows(vec![vec![text("dbo"), text("customers"), text("trg_customers_audit"), int(0), text("INSERT")]]),
    );
    // Asked per table in load order: customers, then orders.
    script.on(TRIGGERS, Response::rows(vec![vec![text("trg_customers_audit")]]));
    script.on(TRIGGERS, Response::rows(vec![]));
    let orders_before = vec![
        constraint("CHECK", "CK_orders_total", answers.check_trusted),
        constraint("FOREIGN KEY", "FK_orders_customers", true),
    ];
    // Before the load (pre-flight, then the loader); after it, the bulk load marked them not
    // trusted.
    script.on(CONSTRAINTS, Response::rows(vec![constraint("CHECK", "CK_customers_name", true)]));
    script.on(CONSTRAINTS, Response::rows(orders_before.clone()));
    script.on(CONSTRAINTS, Response::rows(orders_before));
    script.on(
        CONSTRAINTS,
        Response::rows(vec![
            constraint("CHECK", "CK_orders_total", false),
            constraint("FOREIGN KEY", "FK_orders_customers", false),
        ]),
    );
    (script, db)
}

async fn run(source: Arc<MssqlDatabase>, target: &Arc<MssqlDatabase>) -> RunSummary {
    SyncJob::new(source, Arc::clone(target), SyncMode::Full)
        .engine(EngineConfig::builder().batch_size(100).build().unwrap())
        .run(RunRequest::all().force())
        .await
        .unwrap()
}

fn fk_line(summary: &RunSummary) -> String {
    summary.preflight.outcomes.iter().find(|o| o.check == FK_CHECK).map(|o| o.detail.clone()).unwrap()
}

fn bulk_options(log: &[Recorded], table: &str) -> BulkOptions {
    let sql = format!("INSERT BULK {table} ");
    let bulk = log.iter().find(|r| r.sql.starts_with(&sql)).unwrap_or_else(|| panic!("no bulk load into {table}"));
    match &bulk.kind {
        RecordedKind::BulkInsert { options, .. } => *options,
        other => panic!("{other:?}"),
    }
}

fn position(statements: &[String], start: &str) -> usize {
    statements.iter().position(|s| s.starts_with(start)).unwrap_or_else(|| panic!("no `{start}` in {statements:#?}"))
}

#[tokio::test]
async fn a_trusted_full_load_bulk_loads_unchecked_proves_the_foreign_key_then_trusts_it_again() {
    let (script, target) = target(Target { may_alter: true, check_trusted: false });
    script.always(ORPHANS, Response::rows(vec![vec![big(0)]]));
    let summary = run(source(), &target).await;
    assert!(summary.succeeded(), "{summary}");
    assert_eq!(
        fk_line(&summary),
        "deferred to a set-based proof (bulk loads without CHECK_CONSTRAINTS, then DMF re-validates the 1 trusted \
         foreign key(s) and CHECK constraint(s) they mark not trusted (ALTER TABLE … WITH CHECK CHECK CONSTRAINT, as \
         user dmf_loader); not trusted already, so left not trusted: CHECK constraint `CK_orders_total` of \
         dbo.orders (ALTER TABLE … WITH CHECK CHECK CONSTRAINT trusts one again)); dbo.customers per row, because \
         its insert triggers trg_customers_audit would not fire during the load (--skip-target-triggers allows it)"
    );

    let log = script.log();
    let per_row = bulk_options(&log, "[dbo].[customers]");
    assert!(per_row.check_constraints && per_row.fire_triggers, "the table with a trigger stays per row: {per_row:?}");
    let fast = bulk_options(&log, "[dbo].[orders]");
    assert_eq!(
        fast,
        BulkOptions {
            keep_identity: false,
            keep_nulls: true,
            check_constraints: false,
            table_lock: false,
            fire_triggers: false
        }
    );

    let statements = statements(&script);
    let bulk = position(&statements, "INSERT BULK [dbo].[orders]");
    let proof = position(&statements, ORPHANS);
    let retrust = position(&statements, RETRUST_FK);
    assert!(bulk < proof && proof < retrust, "bulk load, proof, re-validation: {statements:#?}");
    assert_eq!(
        statements.iter().filter(|s| s.starts_with("ALTER TABLE")).collect::<Vec<_>>(),
        [RETRUST_FK],
        "only what was trusted before: not CK_orders_total (untrusted already), nothing on customers (checked)"
    );
    let alter = log.iter().find(|r| r.sql == RETRUST_FK).unwrap();
    assert_eq!(alter.kind, RecordedKind::Batch);
    // The snapshot before the load: pre-flight, then the loader of orders just before its bulk
    // load; the state after it, read before re-validating.
    let constraints: Vec<&Recorded> = log.iter().filter(|r| r.sql.contains(CONSTRAINTS)).collect();
    assert_eq!(constraints.len(), 4);
    assert!(constraints.iter().skip(1).all(|r| r.params == [dmf_core::Value::Text("[dbo].[orders]".into())]));
    assert!(!statements.iter().any(|s| s.contains("MERGE")), "no orphan, no catch-up loads");
}

#[tokio::test]
async fn an_orphan_fails_the_run_naming_the_foreign_key_and_the_key_and_trusts_nothing_again() {
    let (script, target) = target(Target { may_alter: true, check_trusted: true });
    script.always(ORPHANS, Response::rows(vec![vec![big(1)]]));
    script.always(ORPHAN_KEYS, Response::rows(vec![vec![int(10)]]));
    let summary = run(source(), &target).await;
    assert!(!summary.succeeded(), "an orphan never passes\n{summary}");
    let error = summary.migration(CATCH_UP).unwrap().error.clone().unwrap();
    assert!(error.contains("foreign key `FK_orders_customers` of dbo.orders: 1 row(s) reference no row"), "{error}");
    assert!(error.contains("(keys: id=10)"), "{error}");
    let statements = statements(&script);
    assert!(statements.iter().any(|s| s.contains("MERGE INTO [dbo].[orders]")), "the catch-up pass ran first");
    assert!(!statements.iter().any(|s| s.starts_with("ALTER TABLE")), "{statements:#?}");
}

#[tokio::test]
async fn a_row_breaking_a_check_constraint_fails_the_run_at_the_re_validation_naming_it() {
    let (script, target) = target(Target { may_alter: true, check_trusted: true });
    script.always(ORPHANS, Response::rows(vec![vec![big(0)]]));
    let refusal = "The ALTER TABLE statement conflicted with the CHECK constraint \"CK_orders_total\". The conflict \
                   occurred in database \"Sales\", table \"dbo.orders\", column 'total'.";
    script.on(RETRUST_CHECK, Response::Fail(SqlError::server(547, refusal)));
    let summary = run(source(), &target).await;
    assert!(!summary.succeeded(), "{summary}");
    let error = summary.migration(CATCH_UP).unwrap().error.clone().unwrap();
    assert!(
        error.contains("the target's constraints do not hold after the load: CHECK constraint `CK_orders_total` of dbo.orders: SQL Server error 547"),
        "{error}"
    );
    assert!(error.contains("column 'total'"), "{error}");
    let statements = statements(&script);
    let alters: Vec<&String> = statements.iter().filter(|s| s.starts_with("ALTER TABLE")).collect();
    assert_eq!(alters, [RETRUST_CHECK, RETRUST_FK], "a refused constraint does not stop the others");
}

#[tokio::test]
async fn a_login_without_alter_permission_keeps_every_table_per_row() {
    let (script, target) = target(Target { may_alter: false, check_trusted: true });
    let tables = [TableName::new(Some("dbo"), "customers"), TableName::new(Some("dbo"), "orders")];
    let trust = target.foreign_key_trust(&tables, TrustedWrites::Inserts, false).await.unwrap();
    assert!(!trust.allowed);
    assert_eq!(
        trust.reason,
        "database user reader has no ALTER permission on dbo.customers, dbo.orders: a bulk load without \
         CHECK_CONSTRAINTS leaves their constraints not trusted and DMF could not re-validate them (GRANT ALTER ON \
         <table> TO [reader] allows it)"
    );
    let asked: Vec<Recorded> = script.log().into_iter().filter(|r| r.sql.contains(MAY_ALTER)).collect();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[1].params, [dmf_core::Value::Text("[dbo].[orders]".into())]);

    let (script, target) = self::target(Target { may_alter: false, check_trusted: true });
    let summary = run(source(), &target).await;
    assert!(summary.succeeded(), "{summary}");
    assert!(fk_line(&summary).starts_with("per row, because database user reader has no ALTER permission"));
    assert!(bulk_options(&script.log(), "[dbo].[orders]").check_constraints);
    let statements = statements(&script);
    assert!(!statements.iter().any(|s| s.starts_with(ORPHANS) || s.starts_with("ALTER TABLE")), "{statements:#?}");
}

#[tokio::test]
async fn skipping_target_triggers_puts_the_table_with_a_trigger_on_the_fast_path_and_says_so() {
    let (_script, target) = target(Target { may_alter: true, check_trusted: false });
    let job = SyncJob::new(source(), Arc::clone(&target), SyncMode::Full).skip_target_triggers(true);
    let plan = job.plan().await.unwrap();
    assert!(plan.tables.iter().all(|t| t.trust_foreign_keys), "customers too");
    let detail = plan.foreign_keys.detail;
    assert!(detail.contains("re-validates the 2 trusted foreign key(s) and CHECK constraint(s)"), "{detail}");
    assert!(detail.contains("; these insert triggers will not fire: dbo.customers (trg_customers_audit)"), "{detail}");
    assert!(!detail.contains("per row"), "{detail}");
    let triggers = plan.triggers.unwrap();
    assert_eq!(triggers.status, dmf_core::CheckStatus::Passed, "{}", triggers.detail);
    assert!(
        triggers.detail.ends_with("after the load: trg_customers_audit (AFTER INSERT) on dbo.customers"),
        "{}",
        triggers.detail
    );

    // Without the flag the trigger fires, and pre-flight says so.
    let plain = SyncJob::new(source(), Arc::clone(&target), SyncMode::Full).plan().await.unwrap();
    let triggers = plain.triggers.unwrap();
    assert_eq!(triggers.status, dmf_core::CheckStatus::Warning);
    assert!(
        triggers.detail.starts_with(
            "these triggers fire on the sync's writes (INSERT): trg_customers_audit (AFTER INSERT) on dbo.customers."
        ),
        "{}",
        triggers.detail
    );
}

#[tokio::test]
async fn loads_that_also_update_or_delete_never_skip_checks_on_sql_server() {
    let (script, target) = target(Target { may_alter: true, check_trusted: true });
    let tables = [TableName::new(Some("dbo"), "customers")];
    let trust = target.foreign_key_trust(&tables, TrustedWrites::Any, false).await.unwrap();
    assert!(!trust.allowed, "only bulk inserts skip checks on SQL Server");
    assert!(trust.reason.contains("only in bulk inserts"), "{}", trust.reason);
    assert!(script.log().iter().all(|r| !r.sql.contains(MAY_ALTER)), "nothing asked of the server");
}
