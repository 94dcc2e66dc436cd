//! Every statement the crate generates, built with representative and hostile names, checked
//! three ways:
//!
//! - parsed with `sqlparser`'s `MsSqlDialect` where it can parse that kind of statement
//!   (it cannot parse `BACKUP`, `RESTORE`, `ALTER DATABASE`, `ALTER SEQUENCE`: those are [`Check::Golden`], held
//!   by exact-text tests in their modules; nor a parameter after `FETCH NEXT`:
//!   [`Check::BeyondSqlparser`], which sqlfluff must parse);
//! - searched for constructs `MsSqlDialect` accepts although T-SQL does not (`LIMIT`, `::`,
//!   `RETURNING`, `ON CONFLICT`, `ILIKE`), since its parser is lenient;
//! - written to `$DMF_TSQL_DUMP_DIR/{parsed,golden}/` (one `.sql` file per statement) when that is set, so
//!   `scripts/lint-tsql.sh` can run a second T-SQL parser (sqlfluff's `tsql` dialect) over
//!   them.

use std::collections::BTreeSet;
use std::sync::Arc;

use dmf_core::catalog::{ForeignKey, TableName};
use dmf_core::control::{ControlDialect, SqlRunStore};
use dmf_core::quality::RuleCheck;
use dmf_core::{
    BackupRecord, LeaseClaim, MigrationName, MigrationRecord, MigrationStatus, Reject, RunId, RunStatus, RunStore,
    Stage,
};
use sqlparser::dialect::MsSqlDialect;
use sqlparser::parser::Parser;
use tiberius::ColumnData;

use super::extract::{Compare, Ordered, Page, Selected, page_query};
use super::load::{Compared, MergeColumn, MergeMode, TempColumn, UndoColumn, UndoImage};
use super::session;
use super::{admin, catalog, control, extract, load, trust};
use crate::MssqlConnector;
use crate::executor::{RecordedKind, Response, Script};

/// How a statement is checked beyond its exact-text test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// `sqlparser` (MsSqlDialect) parses it.
    Parsed,
    /// `sqlparser` cannot parse this kind of statement: exact text only (and sqlfluff in CI).
    Golden,
    /// `sqlparser` parses it, but sqlfluff's `tsql` grammar is narrower than SQL Server here
    /// (its `NTILE` takes only a literal, where T-SQL takes any integer expression, a
    /// parameter included): reported by the lint script, not failed.
    ParsedBeyondSqlfluff,
    /// sqlfluff parses it, but `sqlparser` is narrower than SQL Server here (its `FETCH NEXT`
    /// takes only a literal, where T-SQL takes a parameter): exact text, and sqlfluff in the
    /// lint script, which fails on it like on a [`Check::Parsed`] statement.
    BeyondSqlparser,
}

/// One generated statement.
pub(crate) struct Statement {
    pub name: String,
    pub sql: String,
    pub check: Check,
}

/// The names statements are built with.
pub(crate) struct Names {
    schema: &'static str,
    table: &'static str,
    key1: &'static str,
    key2: &'static str,
    text: &'static str,
    database: &'static str,
}

/// Names with every character that needs care: `]` (doubled inside brackets), quotes,
/// spaces, unicode.
pub(crate) const HOSTILE: Names = Names {
    schema: "sales ]x",
    table: "Order Lines 'ü' 🦀",
    key1: "order id",
    key2: "li]ne",
    text: "name 'x' \"y\"",
    database: "Sales ]DB",
};

/// The same without `]`: sqlfluff's T-SQL lexer does not know the `]]` escape (valid T-SQL,
/// checked by sqlparser and by exact text), so the dump for it uses these.
pub(crate) const LINTABLE: Names = Names {
    schema: "sales x",
    table: "Order Lines 'ü' 🦀",
    key1: "order id",
    key2: "line",
    text: "name 'x' \"y\"",
    database: "Sales DB",
};

/// Every statement, named, built with the hostile names.
pub(crate) fn statements() -> Vec<Statement> {
    statements_with(&HOSTILE)
}

/// Every statement, named, built with `n`.
pub(crate) fn statements_with(n: &Names) -> Vec<Statement> {
    let mut out = Vec::new();
    let mut add = |name: &str, sql: String, check: Check| out.push(Statement { name: name.to_owned(), sql, check });

    // Catalog.
    add("catalog_columns", catalog::COLUMNS.into(), Check::Parsed);
    add("catalog_keys", catalog::KEYS.into(), Check::Parsed);
    add("catalog_foreign_keys", catalog::FOREIGN_KEYS.into(), Check::Parsed);
    add("catalog_table_columns", catalog::TABLE_COLUMNS.into(), Check::Parsed);
    add("catalog_estimate", catalog::ESTIMATE.into(), Check::Parsed);
    add("catalog_identities", catalog::IDENTITIES.into(), Check::Parsed);
    add("catalog_sequences", catalog::sequences(true), Check::Parsed);
    add("catalog_sequences_before_2017", catalog::sequences(false), Check::Parsed);
    add("catalog_triggers", catalog::TRIGGERS.into(), Check::Parsed);

    // Extract.
    let table = TableName::new(Some(n.schema), n.table);
    let select = [
        Selected { name: n.key1, read_as: None },
        Selected { name: n.key2, read_as: None },
        Selected { name: "price", read_as: Some("decimal(19,4)") },
        Selected { name: "code", read_as: None },
        Selected { name: "guid", read_as: None },
        Selected { name: "rv", read_as: Some("bigint") },
        Selected { name: "modified_at", read_as: None },
    ];
    let key = [
        Ordered { name: n.key1, compare: Compare::Native { cast: Some("int".into()) } },
        Ordered { name: n.key2, compare: Compare::Native { cast: Some("smallint".into()) } },
        Ordered { name: "code", compare: Compare::Text },
        Ordered { name: "guid", compare: Compare::GuidText },
    ];
    for (label, page) in [("first", Page::First), ("after", Page::After)] {
        add(&format!("extract_key_{label}"), page_query(&table, &select, &key, page, false), Check::Parsed);
        add(&format!("extract_key_range_{label}"), page_query(&table, &select, &key, page, true), Check::Parsed);
    }
    add("ranges_key_min_max", extract::key_min_max(&table, n.key1), Check::Parsed);
    let key_select = [select[0].clone(), select[1].clone(), select[3].clone(), select[4].clone()];
    add("ranges_key_boundaries", extract::key_boundaries(&table, &key_select, &key), Check::ParsedBeyondSqlfluff);
    let rowversion = [Ordered { name: "rv", compare: Compare::RowVersion }, key[0].clone()];
    for (label, page) in [("first", Page::First), ("after", Page::After)] {
        add(
            &format!("extract_rowversion_{label}"),
            page_query(&table, &select, &rowversion, page, false),
            Check::Parsed,
        );
    }
    let modified =
        [Ordered { name: "modified_at", compare: Compare::Native { cast: Some("datetime".into()) } }, key[0].clone()];
    for (label, page) in [("after", Page::After), ("after_null", Page::AfterNullLead)] {
        add(&format!("extract_watermark_{label}"), page_query(&table, &select, &modified, page, false), Check::Parsed);
    }

    // Load.
    let stage = [
        TempColumn { name: n.key1, native: "int".into(), collation: None },
        TempColumn { name: n.key2, native: "smallint".into(), collation: None },
        TempColumn { name: n.text, native: "nvarchar(200)".into(), collation: Some("Latin1_General_CS_AS") },
        TempColumn { name: "notes", native: "varchar(max)".into(), collation: None },
        TempColumn { name: "price", native: "decimal(19,4)".into(), collation: None },
    ];
    let key_names = [n.key1.to_owned(), n.key2.to_owned()];
    add("session_open", session::OPEN.to_owned(), Check::Parsed);
    add("load_create_stage", load::create_stage(&stage, &key_names, &stage[..2], &[]), Check::Parsed);
    add("load_create_stage_with_undo", load::create_stage(&stage, &key_names, &stage[..2], &stage), Check::Parsed);
    let columns = [
        MergeColumn { name: n.key1, update: false, compare: Compared::Value },
        MergeColumn { name: n.key2, update: false, compare: Compared::Value },
        MergeColumn { name: n.text, update: true, compare: Compared::Value },
        MergeColumn { name: "notes", update: true, compare: Compared::Cast("varchar(max)") },
        MergeColumn { name: "price", update: true, compare: Compared::Value },
        MergeColumn { name: "changed_at", update: true, compare: Compared::Utc },
    ];
    let undo = UndoImage { image: vec![n.key1, n.key2, n.text, "notes", "price"], key_in_image: vec![0, 1] };
    let undo_sql = load::undo_insert(&key_names, &undo);
    for (label, mode) in [
        ("upsert", MergeMode::Upsert),
        ("update", MergeMode::Update),
        ("delete", MergeMode::Delete),
        ("insert", MergeMode::Insert),
    ] {
        // sqlparser takes no `OUTPUT` in a `DELETE` (T-SQL's `DELETE t OUTPUT … FROM …`).
        let check = if mode == MergeMode::Delete { Check::BeyondSqlparser } else { Check::Parsed };
        let merge = load::merge(&table, &columns, &key_names, mode, None);
        add(&format!("load_merge_{label}"), load::merge_batch(&table, merge.as_deref(), false, None), check);
        let merge = load::merge(&table, &columns, &key_names, mode, Some(&undo));
        add(
            &format!("load_merge_{label}_identity_undo"),
            load::merge_batch(&table, merge.as_deref(), true, Some(&undo_sql)),
            check,
        );
    }
    // The MERGE-free writes.
    for (label, mode) in [
        ("upsert", MergeMode::Upsert),
        ("update", MergeMode::Update),
        ("delete", MergeMode::Delete),
        ("insert", MergeMode::Insert),
    ] {
        let body = load::merge_free(&table, &columns, &key_names, mode, false, None);
        add(&format!("load_merge_free_{label}"), load::merge_free_batch(body.as_deref(), None), Check::Parsed);
        let body = load::merge_free(&table, &columns, &key_names, mode, true, Some(&undo));
        add(
            &format!("load_merge_free_{label}_identity_undo"),
            load::merge_free_batch(body.as_deref(), Some(&undo_sql)),
            Check::Parsed,
        );
    }
    let body = load::merge_free(&table, &columns[..2], &key_names, MergeMode::Upsert, false, None);
    add("load_merge_free_upsert_key_only", load::merge_free_batch(body.as_deref(), None), Check::Parsed);
    add("load_merge_free_checkpoint_only", load::merge_free_batch(None, None), Check::Parsed);
    add("load_checkpoint_only", load::merge_batch(&table, None, false, None), Check::Parsed);
    add("load_reseed_identity", load::reseed_identity(&table, n.key1), Check::Golden);
    add("load_set_identity", load::set_identity(&table, 9_007_199_254_740_993), Check::Golden);
    let sequence = TableName::new(Some(n.schema), &format!("{} seq", n.table));
    let counters = format!("{} {}", load::set_identity(&table, 41), load::set_sequence(&sequence, Some(-3)));
    add("load_set_sequence", load::set_sequence(&sequence, Some(9_007_199_254_740_993)), Check::Golden);
    add("load_set_sequence_unused", load::set_sequence(&sequence, None), Check::Golden);
    add("load_set_counters", load::set_counters(&counters), Check::Golden);
    add("load_insert_row", load::insert_row(&super::qualified(&table), &stage, true), Check::Parsed);
    add("load_insert_row_into_stage", load::insert_row(load::STAGE, &stage, false), Check::Parsed);
    let parent = TableName::new(Some("dbo"), "parent");
    let unlink = [(parent.clone(), vec![n.text.to_owned(), "notes".to_owned()])];
    add("load_clear", load::clear(&[table.clone(), parent], &unlink), Check::Parsed);
    let undo_key =
        [UndoColumn { name: n.key1, native: "int".into() }, UndoColumn { name: n.key2, native: "smallint".into() }];
    let undo_image = [
        undo_key[0].clone(),
        undo_key[1].clone(),
        UndoColumn { name: n.text, native: "nvarchar(200)".into() },
        UndoColumn { name: "price", native: "decimal(19,4)".into() },
    ];
    // A character column's value is read back through 35 nested `REPLACE`s (Babelfish's
    // escaped JSON strings), beyond sqlfluff's recursion: the statement without one is linted.
    add("load_undo", load::undo(&table, &undo_key, &undo_image, true), Check::ParsedBeyondSqlfluff);
    let numbers = [undo_key[0].clone(), undo_key[1].clone(), undo_image[3].clone()];
    add("load_undo_without_text", load::undo(&table, &undo_key, &numbers, true), Check::Parsed);

    // Rule checks.
    let key = vec![n.key1.to_owned(), n.key2.to_owned()];
    let foreign_key = |name: &str, columns: &[&str], to: &TableName, referenced: &[&str]| ForeignKey {
        name: name.to_owned(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        referenced_table: to.clone(),
        referenced_columns: referenced.iter().map(|c| c.to_string()).collect(),
        enforced: false,
    };
    let parent = TableName::new(Some("dbo"), "Orders");
    let checks = [
        (
            "foreign_key",
            RuleCheck::ForeignKey {
                table: table.clone(),
                key: key.clone(),
                foreign_key: foreign_key("FK_lines_orders", &[n.key1, n.key2], &parent, &["id", "line"]),
            },
        ),
        (
            "self_reference",
            RuleCheck::ForeignKey {
                table: table.clone(),
                key: key.clone(),
                foreign_key: foreign_key("FK_lines_parent", &["parent_id"], &table, &[n.key1]),
            },
        ),
        ("not_null", RuleCheck::NotNull { table: table.clone(), key: key.clone(), column: n.text.to_owned() }),
        (
            "unique",
            RuleCheck::Unique {
                table: table.clone(),
                key: key.clone(),
                columns: vec![n.text.to_owned(), "code".into()],
            },
        ),
        ("predicate", RuleCheck::Predicate { table: table.clone(), key, sql: "[price] >= 0 AND code <> N'x'".into() }),
    ];
    for (label, check) in &checks {
        let dialect = control::MssqlDialect;
        add(&format!("rules_{label}_count"), dmf_core::quality::count_statement(&dialect, check), Check::Parsed);
        // sqlparser takes only a literal after FETCH NEXT; T-SQL takes the bound sample size.
        let sample = dmf_core::quality::sample_statement(&dialect, check);
        add(&format!("rules_{label}_sample"), sample, Check::BeyondSqlparser);
        add(&format!("rules_{label}_read_only"), dialect.begin_read_only().to_owned(), Check::Parsed);
    }

    // Constraint trust around the fast path of a full load.
    add("trust_may_alter", trust::MAY_ALTER.into(), Check::Parsed);
    add("trust_insert_triggers", trust::INSERT_TRIGGERS.into(), Check::Parsed);
    add("trust_constraints", trust::CONSTRAINTS.into(), Check::Parsed);
    add("trust_retrust_foreign_key", trust::retrust(&table, "FK_lines_orders"), Check::Golden);
    add("trust_retrust_check", trust::retrust(&table, n.text), Check::Golden);

    // Control tables, and dmf-core's control plane in this crate's dialect.
    add("control_create", control::CREATE.into(), Check::Parsed);
    add("control_inspect", control::INSPECT.into(), Check::Parsed);
    add("control_begin", control::BEGIN.into(), Check::Parsed);
    add("control_commit", control::COMMIT.into(), Check::Parsed);
    add("control_rollback", control::ROLLBACK.into(), Check::Parsed);
    add("control_save_checkpoint", control::save_checkpoint().into(), Check::Parsed);
    add("control_checkpoint", control::read_checkpoint().into(), Check::Parsed);
    add("control_clear_checkpoint", control::clear_checkpoint().into(), Check::Parsed);
    for (name, sql) in run_store_statements() {
        let check = if sql.contains("FETCH NEXT @") { Check::BeyondSqlparser } else { Check::Parsed };
        add(&format!("control_{name}"), sql, check);
    }

    // Administration.
    add("admin_ping", admin::PING.into(), Check::Parsed);
    add("admin_server_facts", admin::SERVER_FACTS.into(), Check::Parsed);
    add("admin_database_state", admin::DATABASE_STATE.into(), Check::Parsed);
    add("admin_replica_states", admin::REPLICA_STATES.into(), Check::Parsed);
    add("admin_default_backup_path", admin::DEFAULT_BACKUP_PATH.into(), Check::Parsed);
    add("admin_backup_compressed", admin::backup(true), Check::Golden);
    add("admin_backup", admin::backup(false), Check::Golden);
    add("admin_verify", admin::VERIFY.into(), Check::Golden);
    add("admin_backup_history", admin::BACKUP_HISTORY.into(), Check::Parsed);
    add("admin_single_user", admin::single_user(n.database), Check::Golden);
    add("admin_restore", admin::RESTORE.into(), Check::Golden);
    add("admin_multi_user", admin::multi_user(n.database), Check::Golden);
    add("admin_send_mail", admin::SEND_MAIL.into(), Check::Parsed);
    out
}

/// What dmf-core's [`SqlRunStore`] sends over an [`MssqlConnector`], named after the call
/// that sent it: each [`RunStore`] method is called once against a script that records the
/// statements (and answers with an id, or one changed row, where the store needs one).
fn run_store_statements() -> Vec<(String, String)> {
    let script = Script::new();
    script.always("OUTPUT INSERTED", Response::rows(vec![vec![ColumnData::I64(Some(1))]]));
    script.always("UPDATE", Response::Affected(1));
    script.always("INSERT INTO [dmf].[leases]", Response::Affected(1));
    let connector = MssqlConnector::new(Arc::new(script.connector("sa@test:1433/Sales", "Sales")));
    let store = SqlRunStore::new(Arc::new(connector));
    let (run, migration) = (RunId(1), MigrationName::new("a"));
    let reject = Reject { stage: Stage::Load, key: "k".into(), reason: "r".into(), payload: serde_json::Value::Null };
    let mut out = Vec::new();
    let mut take = |call: &str| {
        let sent = script.log().into_iter().filter(|r| matches!(r.kind, RecordedKind::Query | RecordedKind::Execute));
        out.extend(
            sent.enumerate().map(|(i, r)| (if i == 0 { call.to_owned() } else { format!("{call}_{i}") }, r.sql)),
        );
        script.clear_log();
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    runtime.block_on(async {
        store.start_run(std::slice::from_ref(&migration), "host").await.unwrap();
        take("start_run");
        store.finish_run(run, RunStatus::Completed, None).await.unwrap();
        take("finish_run");
        let backup = BackupRecord {
            method: "m".into(),
            location: "l".into(),
            taken_at: std::time::SystemTime::UNIX_EPOCH,
            size_bytes: None,
        };
        store.record_backup(run, &backup).await.unwrap();
        take("record_backup");
        store
            .save_migration_record(&MigrationRecord::new(run, migration.clone(), MigrationStatus::Running))
            .await
            .unwrap();
        take("save_migration_record");
        store.latest_record(&migration).await.unwrap();
        take("latest_record");
        store.run(run).await.unwrap();
        take("run");
        store.runs(5).await.unwrap();
        take("runs");
        store.migration_records(run).await.unwrap();
        take("migration_records");
        store.record_rejects(run, &migration, &[reject.clone(), reject]).await.unwrap();
        take("record_rejects");
        store.rejects(run, Some(&migration), 10, 20).await.unwrap();
        take("rejects_of_a_migration");
        store.rejects(run, None, 10, 0).await.unwrap();
        take("rejects");
        store.checkpoint(&migration).await.unwrap();
        take("store_checkpoint");
        let claim = LeaseClaim {
            scope: "target".into(),
            holder: "h".into(),
            host: "host".into(),
            pid: 1,
            run: None,
            now: std::time::SystemTime::UNIX_EPOCH,
            ttl: std::time::Duration::from_secs(30),
            dead_holder: None,
        };
        // The script has no lease row: the claim reads, then inserts.
        store.claim_lease(&claim).await.unwrap();
        take("claim_lease");
        store.renew_lease("target", "h", Some(run), std::time::SystemTime::UNIX_EPOCH, claim.ttl).await.unwrap();
        take("renew_lease");
        store.release_lease("target", "h").await.unwrap();
        take("release_lease");
    });
    out
}

#[test]
fn every_run_store_call_is_in_the_corpus() {
    let names: Vec<String> = run_store_statements().into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "start_run",
            "finish_run",
            "record_backup",
            "save_migration_record",
            "latest_record",
            "run",
            "runs",
            "migration_records",
            "migration_records_1",
            "record_rejects",
            "rejects_of_a_migration",
            "rejects",
            "store_checkpoint",
            "claim_lease",
            "claim_lease_1",
            "renew_lease",
            "release_lease"
        ]
    );
}

/// Constructs `MsSqlDialect` accepts that T-SQL does not.
const NOT_TSQL: [&str; 6] = [" LIMIT ", "::", "RETURNING", "ON CONFLICT", "ILIKE", "$$"];

#[test]
fn every_statement_sqlparser_can_parse_parses() {
    // sqlparser descends once per nested call: the undo replay's unescaping nests 35
    // `REPLACE`s, more than a test thread's stack holds in a debug build.
    let parse = || {
        let mut failures = Vec::new();
        let all = statements().into_iter().chain(statements_with(&LINTABLE));
        for statement in all.filter(|s| matches!(s.check, Check::Parsed | Check::ParsedBeyondSqlfluff)) {
            if let Err(error) = Parser::parse_sql(&MsSqlDialect {}, &statement.sql) {
                failures.push(format!("{}: {error}\n  {}", statement.name, statement.sql));
            }
        }
        failures
    };
    let failures = std::thread::Builder::new().stack_size(64 << 20).spawn(parse).unwrap().join().unwrap();
    assert!(failures.is_empty(), "statements sqlparser rejects:\n{}", failures.join("\n"));
}

#[test]
fn golden_statements_are_really_beyond_sqlparser() {
    // If sqlparser learns to parse one of these, move it to `Check::Parsed`.
    for statement in statements().iter().filter(|s| matches!(s.check, Check::Golden | Check::BeyondSqlparser)) {
        assert!(
            Parser::parse_sql(&MsSqlDialect {}, &statement.sql).is_err(),
            "{} now parses: check it with sqlparser",
            statement.name
        );
    }
}

#[test]
fn no_statement_uses_constructs_only_a_lenient_parser_accepts() {
    for statement in statements() {
        for construct in NOT_TSQL {
            assert!(!statement.sql.contains(construct), "{} contains `{construct}`", statement.name);
        }
    }
}

#[test]
fn statement_names_are_unique() {
    let all = statements();
    let names: BTreeSet<&str> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names.len(), all.len());
}

/// Writes every statement to `$DMF_TSQL_DUMP_DIR/{parsed,golden}/NNN_name.sql` (for `scripts/lint-tsql.sh`);
/// does nothing when the variable is unset.
#[test]
fn dump_statements_for_a_second_parser() {
    let Some(dir) = std::env::var_os("DMF_TSQL_DUMP_DIR") else { return };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, statement) in statements_with(&LINTABLE).iter().enumerate() {
        // Golden statements, and the few sqlfluff's grammar rejects, go to `golden/`: the lint
        // script reports them but does not fail on them (sqlfluff cannot parse BACKUP and
        // RESTORE VERIFYONLY either). Those only sqlparser cannot parse go to `parsed/`.
        let folder = match statement.check {
            Check::Parsed | Check::BeyondSqlparser => dir.join("parsed"),
            Check::Golden | Check::ParsedBeyondSqlfluff => dir.join("golden"),
        };
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join(format!("{i:03}_{}.sql", statement.name));
        let mut sql = statement.sql.clone();
        if !sql.trim_end().ends_with(';') {
            sql.push(';');
        }
        sql.push('\n');
        std::fs::write(&path, sql).unwrap();
    }
}
