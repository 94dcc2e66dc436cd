//! The control tables' columns, as DMF writes them: the one list the run store, the checkpoint
//! statements and pre-flight's shape check ([`CONTROL_TABLES`](crate::sync::CONTROL_TABLES))
//! all read.

/// `runs`.
pub const RUNS: [&str; 8] = ["id", "status", "plan", "host", "started_at", "finished_at", "backup", "error"];

/// `migration_runs`.
pub const MIGRATION_RUNS: [&str; 15] = [
    "run_id",
    "migration",
    "status",
    "started_at",
    "finished_at",
    "rows_read",
    "rows_inserted",
    "rows_updated",
    "rows_unchanged",
    "rows_deleted",
    "rows_skipped",
    "rows_rejected",
    "duration_ms",
    "resumed",
    "error",
];

/// `checkpoints`.
pub const CHECKPOINTS: [&str; 5] = ["migration", "position", "skip", "done", "updated_at"];

/// `rejects`.
pub const REJECTS: [&str; 8] = ["id", "run_id", "migration", "stage", "source_key", "reason", "payload", "created_at"];

/// `undo_log`.
pub const UNDO_LOG: [&str; 7] = ["id", "run_id", "migration", "table_name", "key", "action", "before_image"];

/// `leases`: one row per claimed scope ([`crate::orchestrator::Lease`]).
pub const LEASES: [&str; 8] = ["scope", "holder", "host", "pid", "run_id", "acquired_at", "heartbeat_at", "expires_at"];
