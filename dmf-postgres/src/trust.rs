//! May a full load skip per-row foreign-key checks on this target? PostgreSQL skips them in a
//! session with `session_replication_role = replica`, which a superuser may set, or (from
//! PostgreSQL 15) a role granted `SET` on that parameter. The same setting silences the
//! tables' ordinary user triggers (and makes `ENABLE REPLICA` ones fire), so tables with such
//! triggers keep per-row checks unless the user accepts it.

use dmf_core::catalog::TableName;
use dmf_core::sync::{ForeignKeyTrust, TrustedWrites};
use dmf_core::{Result, Stage};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::error::to_dmf_error;
use crate::sql::qualified;

/// Is the current user a superuser?
const SUPERUSER: &str = "SELECT rolsuper, current_user::text FROM pg_roles WHERE rolname = current_user";

/// May the current user set the parameter (PostgreSQL 15 and later)?
const MAY_SET: &str = "SELECT has_parameter_privilege('session_replication_role', 'SET')";

/// User triggers that `replica` mode would silence (`O`, the default) or newly fire (`R`), on
/// the tables named in `$1` (qualified, quoted names), among those that fire on an operation
/// of `$2` (a mask of `pg_trigger.tgtype`'s operation bits: [`INSERT`] and more).
pub(crate) const AFFECTED_TRIGGERS: &str = "SELECT n.nspname::text, c.relname::text, \
     string_agg(t.tgname::text, ', ' ORDER BY t.tgname) \
     FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE NOT t.tgisinternal AND t.tgenabled IN ('O', 'R') AND c.oid = ANY (($1::text[])::regclass[]) \
     AND (t.tgtype::int & $2::int) <> 0 \
     GROUP BY n.nspname, c.relname ORDER BY 1, 2";

/// `pg_trigger.tgtype`'s bit of triggers on INSERT (PostgreSQL's `TRIGGER_TYPE_INSERT`).
const INSERT: i32 = 1 << 2;
/// Its bits of triggers on DELETE and UPDATE (`TRIGGER_TYPE_DELETE`, `TRIGGER_TYPE_UPDATE`).
const DELETE_OR_UPDATE: i32 = (1 << 3) | (1 << 4);

/// The operation bits of the triggers loads of `writes` could fire: an insert-only load no
/// UPDATE or DELETE trigger, so those do not keep its table per row.
fn operations(writes: TrustedWrites) -> i32 {
    match writes {
        TrustedWrites::Inserts => INSERT,
        TrustedWrites::Any => INSERT | DELETE_OR_UPDATE,
    }
}

/// The session setting that skips per-row foreign-key checks (and ordinary triggers).
pub(crate) const SKIP_CHECKS: &str = "SET session_replication_role = replica";

/// Decides for `tables`: allowed when the user may set the parameter; tables with affected
/// triggers keep per-row checks unless `skip_triggers`.
pub(crate) async fn decide(
    client: &Client,
    server: &str,
    tables: &[TableName],
    writes: TrustedWrites,
    skip_triggers: bool,
) -> Result<ForeignKeyTrust> {
    let doing = || format!("asking {server} whether loads may skip per-row foreign-key checks");
    let row = client.query_one(SUPERUSER, &[]).await.map_err(|e| to_dmf_error(e, Stage::Preflight, doing()))?;
    let (superuser, user): (bool, String) = (row.get(0), row.get(1));
    let granted = if superuser {
        true
    } else {
        match client.query_one(MAY_SET, &[]).await {
            Ok(row) => row.get(0),
            // Before PostgreSQL 15 only superusers may set it.
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_FUNCTION) => false,
            Err(e) => return Err(to_dmf_error(e, Stage::Preflight, doing())),
        }
    };
    if !granted {
        return Ok(ForeignKeyTrust {
            allowed: false,
            reason: format!(
                "user {user} may not set session_replication_role (it needs to be a superuser, or be granted it: \
                 GRANT SET ON PARAMETER session_replication_role TO \"{user}\")"
            ),
            per_row_tables: Vec::new(),
            silences_triggers: true,
        });
    }
    let names: Vec<String> = tables.iter().map(qualified).collect();
    let rows = client
        .query(AFFECTED_TRIGGERS, &[&names, &operations(writes)])
        .await
        .map_err(|e| to_dmf_error(e, Stage::Preflight, doing()))?;
    let mut per_row_tables = Vec::new();
    let mut silenced = Vec::new();
    for row in rows {
        let (schema, table, triggers): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let name = TableName::new(Some(&schema), &table);
        if skip_triggers {
            silenced.push(format!("{name} ({triggers})"));
        } else {
            per_row_tables.push((
                name,
                format!("its triggers {triggers} would not fire during the load (--skip-target-triggers allows it)"),
            ));
        }
    }
    let how = if superuser { "a superuser" } else { "granted SET on session_replication_role" };
    let mut reason = format!("user {user} is {how}: loading sessions set session_replication_role = replica");
    if !silenced.is_empty() {
        reason.push_str(&format!("; these triggers will not fire: {}", silenced.join(", ")));
    }
    Ok(ForeignKeyTrust { allowed: true, reason, per_row_tables, silences_triggers: true })
}
