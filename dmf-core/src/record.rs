//! What flows through a migration: records that know their source key.

use serde::Serialize;

/// A row moving through a migration.
///
/// `key` names the row in error messages and rejects (for example the legacy id), so a user
/// can find it in the source. `Serialize` gives the payload stored with a reject.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Customer { id: i64, email: String }
///
/// impl dmf_core::Record for Customer {
///     fn key(&self) -> String { self.id.to_string() }
/// }
/// ```
pub trait Record: Serialize + Send + Sync + 'static {
    /// The row's key in its source, as text.
    fn key(&self) -> String;
}

/// A row that was set aside, with the stage and the reason (the reject quarantine).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reject {
    /// The stage that refused the row.
    pub stage: crate::Stage,
    /// The row's source key.
    pub key: String,
    /// Why, naming the field and value where known.
    pub reason: String,
    /// The row as JSON.
    pub payload: serde_json::Value,
}

impl Reject {
    /// Builds a reject for `record`. A payload that cannot be serialised is stored as the
    /// serialisation error's text, so the reject itself is never lost.
    pub fn of<R: Record + ?Sized>(stage: crate::Stage, record: &R, reason: impl Into<String>) -> Self {
        let payload = serde_json::to_value(record)
            .unwrap_or_else(|e| serde_json::Value::String(format!("payload not serialisable: {e}")));
        Self { stage, key: record.key(), reason: reason.into(), payload }
    }
}
