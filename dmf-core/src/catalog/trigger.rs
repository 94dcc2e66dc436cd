//! The target's triggers: which fire on the writes of a sync, and which a loading session
//! that skips them (PostgreSQL `session_replication_role = replica`, SQL Server bulk loads
//! without `FIRE_TRIGGERS`) silences.

use std::collections::BTreeSet;
use std::fmt;

use super::TableName;

/// An operation a trigger fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TriggerEvent {
    /// `INSERT`.
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `TRUNCATE` (PostgreSQL).
    Truncate,
}

impl fmt::Display for TriggerEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TriggerEvent::Insert => "INSERT",
            TriggerEvent::Update => "UPDATE",
            TriggerEvent::Delete => "DELETE",
            TriggerEvent::Truncate => "TRUNCATE",
        })
    }
}

/// An enabled user trigger on a table of the target.
///
/// ```
/// use dmf_core::catalog::{TableName, Trigger, TriggerEvent};
/// let trigger = Trigger {
///     table: TableName::new(Some("public"), "film"),
///     name: "last_updated".into(),
///     timing: "BEFORE".into(),
///     events: [TriggerEvent::Update].into(),
///     fires: true,
///     fires_when_skipped: false,
/// };
/// assert_eq!(trigger.to_string(), "last_updated (BEFORE UPDATE) on public.film");
/// assert!(trigger.fires_on(&[TriggerEvent::Insert, TriggerEvent::Update]));
/// assert!(!trigger.fires_on(&[TriggerEvent::Insert]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Trigger {
    /// The table it is on.
    pub table: TableName,
    /// Its name.
    pub name: String,
    /// When it fires, as the database says it (`BEFORE`, `AFTER`, `INSTEAD OF`).
    pub timing: String,
    /// The operations it fires on.
    pub events: BTreeSet<TriggerEvent>,
    /// True when it fires in an ordinary session (false for PostgreSQL `ENABLE REPLICA`
    /// triggers, which fire only in sessions that skip the others).
    pub fires: bool,
    /// True when it fires even in a session that skips triggers (PostgreSQL `ENABLE ALWAYS`
    /// and `ENABLE REPLICA` triggers).
    pub fires_when_skipped: bool,
}

impl Trigger {
    /// True when it fires on one of `events`.
    pub fn fires_on(&self, events: &[TriggerEvent]) -> bool {
        events.iter().any(|e| self.events.contains(e))
    }

    /// `name (TIMING EVENT OR EVENT)`, without the table.
    pub fn label(&self) -> String {
        let events: Vec<String> = self.events.iter().map(ToString::to_string).collect();
        format!("{} ({} {})", self.name, self.timing, events.join(" OR "))
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.label(), self.table)
    }
}
