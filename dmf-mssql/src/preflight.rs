//! The database's own pre-flight checks: connectivity and version, database state, Always On
//! (HADR) role and health with DMF's policies, and the control tables.
//!
//! | finding | as a target | as a source |
//! |---|---|---|
//! | SQL Server older than 2016 (13.x) | refused | refused |
//! | database not ONLINE | refused | refused |
//! | database READ_ONLY (updateability) or SINGLE_USER | refused | fine |
//! | a secondary replica of an availability group | refused (writes go to the primary: connect through the listener) | readable secondary: fine; non-readable: refused |
//! | the primary replica, and the database is flagged production | refused | fine |
//! | a synchronous-commit secondary NOT_HEALTHY, suspended or not synchronizing | refused (a warning with `allow_unhealthy_secondaries`) | not checked |
//! | a secondary's log send or redo queue above `queue_warning_kb` | warning | not checked |
//! | the replica DMVs not readable (no VIEW SERVER STATE) | refused: the role is unknown | warning |
//! | control tables missing | created when the login may (refused with `read_only_control`) | not checked |
//! | control tables of another shape | refused | not checked |

use std::time::Instant;

use dmf_core::orchestrator::CheckOutcome;
use dmf_core::sync::DatabaseRole;
use dmf_core::{Error, Stage, Value};

use crate::control::{ControlState, inspect};
use crate::database::{MssqlOptions, Shared};
use crate::error::to_dmf_error;
use crate::executor::{Executor, SqlError, SqlRow};
use crate::sql::admin as sql;

/// The first SQL Server major version DMF supports (2016: `DROP TABLE IF EXISTS`, JSON).
pub(crate) const MIN_MAJOR_VERSION: u32 = 13;

/// `SERVERPROPERTY` facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerFacts {
    pub engine_edition: i64,
    pub product_version: String,
    pub edition: String,
    pub hadr_enabled: bool,
    pub server_name: String,
}

impl ServerFacts {
    pub(crate) fn from_row(row: &SqlRow) -> Result<Self, SqlError> {
        Ok(Self {
            engine_edition: row.int(0)?.unwrap_or(0),
            product_version: row.text(1)?.unwrap_or_default(),
            edition: row.text(2)?.unwrap_or_default(),
            hadr_enabled: row.bool(3)?.unwrap_or(false),
            server_name: row.text(4)?.unwrap_or_default(),
        })
    }

    /// The major version (`16` for `16.0.4135.4`).
    pub(crate) fn major_version(&self) -> u32 {
        self.product_version.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0)
    }

    /// Azure SQL Database has no `sys.dm_hadr_*` views and no BACKUP TO DISK.
    pub(crate) fn is_azure_sql_database(&self) -> bool {
        self.engine_edition == 5
    }
}

/// `sys.databases` facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatabaseState {
    pub state: String,
    pub user_access: String,
    pub read_only: bool,
    pub in_availability_group: bool,
    pub updateability: String,
}

impl DatabaseState {
    pub(crate) fn from_row(row: &SqlRow) -> Result<Self, SqlError> {
        Ok(Self {
            state: row.text(0)?.unwrap_or_default(),
            user_access: row.text(1)?.unwrap_or_default(),
            read_only: row.bool(2)?.unwrap_or(false),
            in_availability_group: row.bool(3)?.unwrap_or(false),
            updateability: row.text(4)?.unwrap_or_default(),
        })
    }
}

/// One replica's state for the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplicaState {
    pub group: String,
    pub server: String,
    pub local: bool,
    pub primary: bool,
    pub role: String,
    pub availability_mode: String,
    pub secondary_connections: String,
    pub sync_state: String,
    pub db_health: String,
    pub suspended: bool,
    pub log_send_queue_kb: i64,
    pub redo_queue_kb: i64,
}

impl ReplicaState {
    pub(crate) fn from_row(row: &SqlRow) -> Result<Self, SqlError> {
        Ok(Self {
            group: row.text(0)?.unwrap_or_default(),
            server: row.text(1)?.unwrap_or_default(),
            local: row.bool(2)?.unwrap_or(false),
            primary: row.bool(3)?.unwrap_or(false),
            role: row.text(4)?.unwrap_or_default(),
            availability_mode: row.text(6)?.unwrap_or_default(),
            secondary_connections: row.text(7)?.unwrap_or_default(),
            sync_state: row.text(8)?.unwrap_or_default(),
            db_health: row.text(9)?.unwrap_or_default(),
            suspended: row.bool(10)?.unwrap_or(false),
            log_send_queue_kb: row.int(11)?.unwrap_or(0),
            redo_queue_kb: row.int(12)?.unwrap_or(0),
        })
    }
}

/// The message of an error, without the stage prefix (the check's name says it).
fn message(error: &Error) -> String {
    match error {
        Error::Stage { message, .. } => message.clone(),
        other => other.chain().replace('\n', "; "),
    }
}

fn side(role: DatabaseRole) -> &'static str {
    match role {
        DatabaseRole::Source => "source",
        DatabaseRole::Target => "target",
    }
}

/// The version check: SQL Server 2016 or later.
pub(crate) fn version_outcome(role: DatabaseRole, server: &str, facts: &ServerFacts, millis: u128) -> CheckOutcome {
    let name = format!("{} connectivity", side(role));
    if facts.major_version() < MIN_MAJOR_VERSION {
        return CheckOutcome::failed(
            name,
            format!(
                "{server} runs SQL Server {} ({}): DMF needs SQL Server 2016 (13.x) or later",
                facts.product_version, facts.edition
            ),
        );
    }
    CheckOutcome::passed(
        name,
        format!(
            "{server} ({}): SQL Server {} {}, answered in {millis} ms",
            facts.server_name, facts.product_version, facts.edition
        ),
    )
}

/// The database state check.
pub(crate) fn database_outcome(role: DatabaseRole, database: &str, state: Option<&DatabaseState>) -> CheckOutcome {
    let name = format!("{} database state", side(role));
    let Some(state) = state else {
        return CheckOutcome::failed(name, format!("there is no database [{database}] on this server"));
    };
    if state.state != "ONLINE" {
        return CheckOutcome::failed(name, format!("database [{database}] is {}, not ONLINE", state.state));
    }
    if role == DatabaseRole::Target {
        if state.read_only || state.updateability == "READ_ONLY" {
            return CheckOutcome::failed(
                name,
                format!("database [{database}] is read-only: every write would be refused"),
            );
        }
        if state.user_access != "MULTI_USER" {
            return CheckOutcome::failed(
                name,
                format!("database [{database}] is in {} mode: DMF needs several connections", state.user_access),
            );
        }
    }
    CheckOutcome::passed(name, format!("database [{database}] is ONLINE, {}", state.updateability))
}

/// The Always On role and health check, by DMF's policies (see the module table).
pub(crate) fn hadr_outcomes(
    role: DatabaseRole,
    options: &MssqlOptions,
    database: &str,
    facts: &ServerFacts,
    state: &DatabaseState,
    replicas: Result<&[ReplicaState], &Error>,
) -> Vec<CheckOutcome> {
    let name = format!("{} replica role", side(role));
    if facts.is_azure_sql_database() {
        let detail = "Azure SQL Database: no availability-group views; updateability checked above";
        return vec![CheckOutcome::passed(name, detail)];
    }
    if !facts.hadr_enabled || !state.in_availability_group {
        let standalone = if facts.hadr_enabled {
            format!("database [{database}] is not in an availability group")
        } else {
            "Always On is not enabled on this server".to_owned()
        };
        if role == DatabaseRole::Target && options.production {
            return vec![CheckOutcome::failed(
                name,
                format!("{standalone}, and the target is flagged as production: DMF does not write into it"),
            )];
        }
        return vec![CheckOutcome::passed(name, standalone)];
    }
    let replicas = match replicas {
        Ok(replicas) => replicas,
        Err(error) => {
            let detail = format!("cannot read the availability-group state: {}", message(error));
            return vec![match role {
                DatabaseRole::Target => {
                    CheckOutcome::failed(name, format!("{detail}; refusing to write while the replica role is unknown"))
                }
                DatabaseRole::Source => CheckOutcome::warning(name, detail),
            }];
        }
    };
    let Some(local) = replicas.iter().find(|r| r.local) else {
        let detail =
            format!("database [{database}] is in an availability group but this replica has no state row for it");
        return vec![match role {
            DatabaseRole::Target => CheckOutcome::failed(name, detail),
            DatabaseRole::Source => CheckOutcome::warning(name, detail),
        }];
    };
    let primary = local.primary || local.role == "PRIMARY";
    let group = &local.group;
    match role {
        DatabaseRole::Source => {
            if primary {
                return vec![CheckOutcome::passed(name, format!("{} is the primary replica of {group}", local.server))];
            }
            if local.secondary_connections == "NO" {
                return vec![CheckOutcome::failed(
                    name,
                    format!(
                        "{} is a non-readable secondary of {group}: it cannot be read; use a readable secondary or the listener",
                        local.server
                    ),
                )];
            }
            vec![CheckOutcome::passed(
                name,
                format!(
                    "{} is a readable secondary of {group} ({}): fine as a source",
                    local.server, local.secondary_connections
                ),
            )]
        }
        DatabaseRole::Target => {
            if !primary {
                let readable = if local.secondary_connections == "NO" { "non-readable" } else { "readable" };
                return vec![CheckOutcome::failed(
                    name,
                    format!(
                        "{} is a {readable} secondary replica of {group}: writes are refused; connect through the \
                         availability group listener (ApplicationIntent=ReadWrite)",
                        local.server
                    ),
                )];
            }
            if options.production {
                return vec![CheckOutcome::failed(
                    name,
                    format!(
                        "{} is the primary replica of {group} and the target is flagged as production: DMF does not write into it",
                        local.server
                    ),
                )];
            }
            let mut outcomes =
                vec![CheckOutcome::passed(name, format!("{} is the primary replica of {group}", local.server))];
            let health = format!("{} secondary health", side(role));
            let secondaries: Vec<&ReplicaState> = replicas.iter().filter(|r| !r.local).collect();
            let unhealthy: Vec<String> = secondaries
                .iter()
                .filter(|r| r.availability_mode == "SYNCHRONOUS_COMMIT")
                .filter(|r| r.db_health == "NOT_HEALTHY" || r.suspended || r.sync_state == "NOT SYNCHRONIZING")
                .map(|r| {
                    let suspended = if r.suspended { ", suspended" } else { "" };
                    format!("{} ({}, {}{suspended})", r.server, r.sync_state, r.db_health)
                })
                .collect();
            if !unhealthy.is_empty() {
                let detail = format!(
                    "synchronous-commit secondaries of {group} are not healthy: {}; a large load would not be protected",
                    unhealthy.join(", ")
                );
                outcomes.push(if options.allow_unhealthy_secondaries {
                    CheckOutcome::warning(health.clone(), detail)
                } else {
                    CheckOutcome::failed(health.clone(), detail)
                });
            }
            let queued: Vec<String> = secondaries
                .iter()
                .filter(|r| {
                    r.log_send_queue_kb > options.queue_warning_kb || r.redo_queue_kb > options.queue_warning_kb
                })
                .map(|r| {
                    format!(
                        "{} (log send queue {} KB, redo queue {} KB)",
                        r.server, r.log_send_queue_kb, r.redo_queue_kb
                    )
                })
                .collect();
            if !queued.is_empty() {
                outcomes.push(CheckOutcome::warning(
                    "target secondary queues",
                    format!(
                        "secondaries of {group} are behind: {}; large MERGE batches will add to it",
                        queued.join(", ")
                    ),
                ));
            }
            if unhealthy.is_empty() && queued.is_empty() {
                outcomes.push(CheckOutcome::passed(
                    health,
                    format!("{} secondaries of {group} healthy", secondaries.len()),
                ));
            }
            outcomes
        }
    }
}

/// The control-table check of a target.
pub(crate) fn control_outcome(options: &MssqlOptions, state: &ControlState) -> CheckOutcome {
    let name = "target control tables";
    if !state.misshapen.is_empty() {
        let problems: Vec<String> =
            state.misshapen.iter().map(|(table, columns)| format!("{table} lacks {}", columns.join(", "))).collect();
        return CheckOutcome::failed(
            name,
            format!("{}: not made by this DMF version; rename or drop them", problems.join("; ")),
        );
    }
    if state.missing.is_empty() {
        return CheckOutcome::passed(name, format!("{} exist", state.complete.join(", ")));
    }
    if options.read_only_control {
        return CheckOutcome::failed(
            name,
            format!("{} missing, and creating them is not allowed", state.missing.join(", ")),
        );
    }
    if state.can_create() {
        return CheckOutcome::passed(name, format!("{} missing: they will be created", state.missing.join(", ")));
    }
    let permission = if state.schema_exists { "CREATE TABLE" } else { "CREATE SCHEMA and CREATE TABLE" };
    CheckOutcome::failed(
        name,
        format!("{} missing, and the login lacks {permission} to create them", state.missing.join(", ")),
    )
}

/// Runs the checks for `role`. Only the connectivity check is reported when the server
/// cannot be reached.
pub(crate) async fn check(shared: &Shared, role: DatabaseRole) -> Vec<CheckOutcome> {
    let server = shared.name();
    let database = shared.connector.database();
    let connectivity = format!("{} connectivity", side(role));
    let started = Instant::now();
    let mut session = match shared.connector.session().await {
        Ok(session) => session,
        Err(error) => {
            let error = to_dmf_error(error, Stage::Preflight, format!("cannot connect to SQL Server at {server}"));
            return vec![CheckOutcome::failed(connectivity, message(&error))];
        }
    };
    let executor: &mut dyn Executor = session.as_mut();
    let facts = match executor.query(sql::SERVER_FACTS, &[]).await.and_then(|rows| match rows.first() {
        Some(row) => ServerFacts::from_row(row),
        None => Err(SqlError::Conversion("SERVERPROPERTY returned no row".into())),
    }) {
        Ok(facts) => facts,
        Err(error) => {
            let error = to_dmf_error(error, Stage::Preflight, format!("asking {server} for its version"));
            return vec![CheckOutcome::failed(connectivity, message(&error))];
        }
    };
    let mut outcomes = vec![version_outcome(role, &server, &facts, started.elapsed().as_millis())];

    let db_param = [Value::Text(database.clone())];
    let state = match executor.query(sql::DATABASE_STATE, &db_param).await {
        Ok(rows) => match rows.first().map(DatabaseState::from_row).transpose() {
            Ok(state) => state,
            Err(error) => {
                outcomes.push(CheckOutcome::failed(format!("{} database state", side(role)), error.to_string()));
                return outcomes;
            }
        },
        Err(error) => {
            let error = to_dmf_error(error, Stage::Preflight, format!("reading the state of [{database}]"));
            outcomes.push(CheckOutcome::failed(format!("{} database state", side(role)), message(&error)));
            return outcomes;
        }
    };
    outcomes.push(database_outcome(role, &database, state.as_ref()));
    let Some(state) = state else { return outcomes };

    let replicas = if facts.hadr_enabled && state.in_availability_group && !facts.is_azure_sql_database() {
        match executor.query(sql::REPLICA_STATES, &db_param).await {
            Ok(rows) => rows
                .iter()
                .map(ReplicaState::from_row)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| to_dmf_error(error, Stage::Preflight, "reading the availability-group state")),
            Err(error) => Err(to_dmf_error(error, Stage::Preflight, "reading the availability-group state")),
        }
    } else {
        Ok(Vec::new())
    };
    outcomes.extend(hadr_outcomes(role, &shared.options, &database, &facts, &state, replicas.as_deref()));

    if role == DatabaseRole::Target {
        outcomes.push(match inspect(executor).await {
            Ok(control) => control_outcome(&shared.options, &control),
            Err(error) => CheckOutcome::failed(
                "target control tables",
                message(&to_dmf_error(error, Stage::Preflight, format!("inspecting the control tables of {server}"))),
            ),
        });
    }
    outcomes
}
