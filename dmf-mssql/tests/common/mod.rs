//! Shared by the scripted tests: canned result rows as SQL Server would send them, and a
//! database whose sessions run against a script.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use dmf_mssql::executor::{RecordedKind, Response, Script};
use dmf_mssql::{MssqlDatabase, MssqlOptions};
use tiberius::ColumnData;

/// Statement fragments that identify each statement the adapter sends.
pub mod pattern {
    pub const SERVER_FACTS: &str = "SERVERPROPERTY('EngineEdition')";
    pub const DATABASE_STATE: &str = "FROM sys.databases AS d";
    pub const REPLICA_STATES: &str = "FROM sys.dm_hadr_database_replica_states AS drs";
    pub const INSPECT: &str = "WHERE s.name = N'dmf'";
    pub const CREATE_CONTROL: &str = "EXEC sp_getapplock @Resource = N'dmf:control-tables'";
    pub const TABLE_COLUMNS: &str = "WHERE c.object_id = OBJECT_ID(@P1)";
    pub const CATALOG_COLUMNS: &str = "t.temporal_type <> 1";
    pub const CATALOG_KEYS: &str = "i.is_unique = 1";
    pub const CATALOG_FKS: &str = "FROM sys.foreign_keys AS fk";
    pub const CREATE_STAGE: &str = "CREATE TABLE #dmf_stage";
    /// The batch after the stage is loaded (MERGE, or INSERT/UPDATE/DELETE joined with the stage).
    pub const MERGE_BATCH: &str = "TRUNCATE TABLE #dmf_merge_log";
    pub const PAGE: &str = "SELECT TOP (@P1)";
    pub const CHECKPOINT: &str = "FROM [dmf].[checkpoints] WHERE [migration] = @P1";
    pub const SAVE_CHECKPOINT: &str = "UPDATE [dmf].[checkpoints] WITH (UPDLOCK, SERIALIZABLE) SET";
    pub const START_RUN: &str = "INSERT INTO [dmf].[runs]";
    pub const UPDATE_RUN: &str = "UPDATE [dmf].[runs] SET";
}

pub fn text(value: &str) -> ColumnData<'static> {
    ColumnData::String(Some(value.to_owned().into()))
}

pub fn null() -> ColumnData<'static> {
    ColumnData::String(None)
}

pub fn int(value: i32) -> ColumnData<'static> {
    ColumnData::I32(Some(value))
}

pub fn big(value: i64) -> ColumnData<'static> {
    ColumnData::I64(Some(value))
}

/// A `bit` cast to `int`, as the catalog queries return flags.
pub fn flag(value: bool) -> ColumnData<'static> {
    ColumnData::I32(Some(i32::from(value)))
}

/// A script and a database on it (`sa@test:1433/Sales`). The target's lease is free: a run's
/// claim inserts its row, and its renewals find it.
pub fn scripted(options: MssqlOptions) -> (Script, Arc<MssqlDatabase>) {
    let script = Script::new();
    script.always("INSERT INTO [dmf].[leases]", Response::Affected(1));
    script.always("UPDATE [dmf].[leases]", Response::Affected(1));
    let connector = script.connector("sa@test:1433/Sales", "Sales");
    (script, Arc::new(MssqlDatabase::with_connector(Arc::new(connector), options)))
}

/// `SERVERPROPERTY` facts of a SQL Server `version` on `edition` (engine edition 3).
pub fn server_facts(script: &Script, version: &str, hadr: bool) {
    script.on(
        pattern::SERVER_FACTS,
        Response::rows(vec![vec![int(3), text(version), text("Developer Edition (64-bit)"), flag(hadr), text("SQL1")]]),
    );
}

/// A healthy standalone SQL Server 2022 and an online, writable database, for every session.
#[allow(dead_code)]
pub fn healthy_standalone(script: &Script) {
    script.always(
        pattern::SERVER_FACTS,
        Response::rows(vec![vec![
            int(3),
            text("16.0.4135.4"),
            text("Developer Edition (64-bit)"),
            flag(false),
            text("SQL1"),
        ]]),
    );
    script.always(
        pattern::DATABASE_STATE,
        Response::rows(vec![vec![text("ONLINE"), text("MULTI_USER"), flag(false), flag(false), text("READ_WRITE")]]),
    );
}

/// A `CATALOG_COLUMNS` row: column `name` of `dbo.table` (object `object_id`), of
/// `type_name` and `length` bytes (precision 10 for `int`), not computed, not identity.
#[allow(dead_code)]
pub fn catalog_column(
    object_id: i32,
    table: &str,
    name: &str,
    type_name: &str,
    length: i32,
    nullable: bool,
) -> Vec<ColumnData<'static>> {
    vec![
        int(object_id),
        text("dbo"),
        text(table),
        text(name),
        text(type_name),
        int(length),
        int(if type_name == "int" { 10 } else { 0 }),
        int(0),
        flag(nullable),
        flag(false),
        flag(false),
        flag(false),
        int(0),
        null(),
        null(),
    ]
}

/// The target database's `sys.databases` row.
pub fn database_state(script: &Script, state: &str, access: &str, read_only: bool, in_ag: bool) {
    let updateability = if read_only { "READ_ONLY" } else { "READ_WRITE" };
    script.on(
        pattern::DATABASE_STATE,
        Response::rows(vec![vec![text(state), text(access), flag(read_only), flag(in_ag), text(updateability)]]),
    );
}

/// One replica's row of `REPLICA_STATES`.
#[allow(clippy::too_many_arguments)]
pub fn replica(
    server: &str,
    local: bool,
    primary: bool,
    mode: &str,
    connections: &str,
    sync_state: &str,
    health: &str,
    suspended: bool,
    queue_kb: i64,
) -> Vec<ColumnData<'static>> {
    vec![
        text("ag1"),
        text(server),
        flag(local),
        flag(primary),
        text(if primary { "PRIMARY" } else { "SECONDARY" }),
        text(health),
        text(mode),
        text(connections),
        text(sync_state),
        text(health),
        flag(suspended),
        big(queue_kb),
        big(0),
    ]
}

/// The control tables with every column, as `INSPECT` reports them (or none of them).
pub fn control_tables(script: &Script, present: bool, may_create: bool) {
    let tables = dmf_core::sync::CONTROL_TABLES;
    let mut rows = Vec::new();
    if present {
        for (table, columns) in tables {
            for column in columns {
                rows.push(vec![text(table), text(column), null(), null(), null()]);
            }
        }
    }
    rows.push(vec![null(), null(), flag(present), flag(may_create), flag(may_create)]);
    script.always(pattern::INSPECT, Response::rows(rows));
}

/// A `sys.columns` row of `TABLE_COLUMNS`: name, type, max_length, precision, scale,
/// nullable, identity, read-only, collation.
#[allow(clippy::too_many_arguments)]
pub fn column(
    name: &str,
    type_name: &str,
    max_length: i32,
    precision: i32,
    scale: i32,
    nullable: bool,
    identity: bool,
    read_only: bool,
    collation: Option<&str>,
) -> Vec<ColumnData<'static>> {
    vec![
        text(name),
        text(type_name),
        int(max_length),
        int(precision),
        int(scale),
        flag(nullable),
        flag(identity),
        flag(read_only),
        collation.map_or_else(null, text),
    ]
}

/// The statements of the log, without session events.
pub fn statements(script: &Script) -> Vec<String> {
    script.statements()
}

/// How many sessions the log shows.
pub fn sessions(script: &Script) -> usize {
    script.log().iter().filter(|r| r.kind == RecordedKind::Session).count()
}
