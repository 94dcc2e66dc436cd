//! The lease statements of [`SqlRunStore`](super::SqlRunStore): claim, renew, release and read
//! the rows of `leases`, one per claimed scope.

use std::time::{Duration, SystemTime};

use super::decode::Cells;
use super::dialect::ControlDialect;
use super::tables::LEASES;
use crate::error::Result;
use crate::names::RunId;
use crate::orchestrator::{LeaseClaim, LeaseRecord};
use crate::value::Value;

fn columns(dialect: &dyn ControlDialect) -> String {
    LEASES.iter().map(|c| dialect.column(c)).collect::<Vec<_>>().join(", ")
}

fn time(time: SystemTime) -> Value {
    Value::TimestampTz(time.into())
}

fn expiry(now: SystemTime, ttl: Duration) -> Value {
    time(now.checked_add(ttl).unwrap_or(now))
}

/// Reads the lease of a scope (parameter 1).
pub(super) fn read(dialect: &dyn ControlDialect) -> String {
    format!(
        "SELECT {} FROM {} WHERE {} = {}",
        columns(dialect),
        dialect.table("leases"),
        dialect.column("scope"),
        dialect.param(1)
    )
}

/// Inserts the claim's row when the scope has none.
pub(super) fn insert(dialect: &dyn ControlDialect) -> String {
    dialect.insert_if_absent(&dialect.table("leases"), LEASES[0], &LEASES)
}

/// The row of a claim, in [`LEASES`] order.
pub(super) fn insert_params(claim: &LeaseClaim) -> Vec<Value> {
    vec![
        Value::Text(claim.scope.clone()),
        Value::Text(claim.holder.clone()),
        Value::Text(claim.host.clone()),
        Value::Int(i64::from(claim.pid)),
        claim.run.map_or(Value::Null, |run| Value::Int(run.0)),
        time(claim.now),
        time(claim.now),
        expiry(claim.now, claim.ttl),
    ]
}

/// Takes the scope's row over when its lease expired or its holder is the claim's dead holder:
/// changes one row when it did. Parameters: the claim's row ([`insert_params`]), then the time
/// before which the lease must have expired and the dead holder (or NULL).
pub(super) fn take_over(dialect: &dyn ControlDialect) -> String {
    let set: Vec<String> = LEASES[1..]
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} = {}", dialect.column(c), dialect.param(i + 2)))
        .collect();
    format!(
        "UPDATE {} SET {} WHERE {} = {} AND ({} <= {} OR {} = {})",
        dialect.table("leases"),
        set.join(", "),
        dialect.column("scope"),
        dialect.param(1),
        dialect.column("expires_at"),
        dialect.param(LEASES.len() + 1),
        dialect.column("holder"),
        dialect.param(LEASES.len() + 2)
    )
}

/// [`take_over`]'s parameters.
pub(super) fn take_over_params(claim: &LeaseClaim) -> Vec<Value> {
    let mut params = insert_params(claim);
    params.extend([time(claim.now), claim.dead_holder.clone().map_or(Value::Null, Value::Text)]);
    params
}

/// Renews a holder's lease: parameters heartbeat, expiry, run (or NULL to keep it), scope,
/// holder.
pub(super) fn renew(dialect: &dyn ControlDialect) -> String {
    let run_id = dialect.column("run_id");
    format!(
        "UPDATE {} SET {} = {}, {} = {}, {run_id} = COALESCE({}, {run_id}) WHERE {} = {} AND {} = {}",
        dialect.table("leases"),
        dialect.column("heartbeat_at"),
        dialect.param(1),
        dialect.column("expires_at"),
        dialect.param(2),
        dialect.param(3),
        dialect.column("scope"),
        dialect.param(4),
        dialect.column("holder"),
        dialect.param(5)
    )
}

/// [`renew`]'s parameters.
pub(super) fn renew_params(
    scope: &str,
    holder: &str,
    run: Option<RunId>,
    now: SystemTime,
    ttl: Duration,
) -> Vec<Value> {
    vec![
        time(now),
        expiry(now, ttl),
        run.map_or(Value::Null, |run| Value::Int(run.0)),
        Value::Text(scope.to_owned()),
        Value::Text(holder.to_owned()),
    ]
}

/// Deletes a holder's lease: parameters scope, holder.
pub(super) fn release(dialect: &dyn ControlDialect) -> String {
    format!(
        "DELETE FROM {} WHERE {} = {} AND {} = {}",
        dialect.table("leases"),
        dialect.column("scope"),
        dialect.param(1),
        dialect.column("holder"),
        dialect.param(2)
    )
}

/// A row of [`read`].
pub(super) fn from_row(row: Vec<Value>) -> Result<LeaseRecord> {
    let cells = Cells::new(row, "leases");
    Ok(LeaseRecord {
        scope: cells.text(0)?,
        holder: cells.text(1)?,
        host: cells.text(2)?,
        pid: u32::try_from(cells.int(3)?).unwrap_or(0),
        run: cells.int_opt(4)?.map(RunId),
        acquired_at: cells.time(5)?.unwrap_or(SystemTime::UNIX_EPOCH),
        heartbeat_at: cells.time(6)?.unwrap_or(SystemTime::UNIX_EPOCH),
        expires_at: cells.time(7)?.unwrap_or(SystemTime::UNIX_EPOCH),
    })
}
