//! The statements of a snapshot handle: exporting the snapshot, and joining it from each
//! reader's connection.

use std::fmt;

/// Opens the exporting transaction. No idle-in-transaction timeout on this session: it is idle
/// in its transaction for as long as the sync runs, by design.
pub(crate) const BEGIN_EXPORT: &str = "SET idle_in_transaction_session_timeout = 0; \
     BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// Exports the transaction's snapshot; returns its identifier.
pub(crate) const EXPORT: &str = "SELECT pg_export_snapshot()";

/// A snapshot identifier as `pg_export_snapshot()` returns it (`00000003-0000001B-1`): upper-case
/// hexadecimal, a dash, upper-case hexadecimal, a dash, decimal digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapshotId(String);

impl SnapshotId {
    /// `text` when it has the shape of a snapshot identifier.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('-');
        let hex = |part: Option<&str>| {
            part.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)))
        };
        let digits = |part: Option<&str>| part.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let valid = hex(parts.next()) && hex(parts.next()) && digits(parts.next()) && parts.next().is_none();
        valid.then(|| Self(text.to_owned()))
    }

    /// The identifier.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Starts a reader's transaction on the exported snapshot.
///
/// `SET TRANSACTION SNAPSHOT` takes no bind parameter (it is a utility statement), so the
/// identifier is written into the text as a string literal. That is safe only because a
/// [`SnapshotId`] was checked to be hexadecimal digits, digits and dashes: it cannot contain a
/// quote or a backslash, whatever the server returned.
pub(crate) fn begin_import(id: &SnapshotId) -> String {
    format!(
        "SET idle_in_transaction_session_timeout = 0; \
         BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
        id.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_have_the_shape_postgresql_gives_them() {
        for valid in ["00000003-0000001B-1", "0000000A-00000002-12", "1-F-0"] {
            assert_eq!(SnapshotId::parse(valid).map(|id| id.to_string()).as_deref(), Some(valid));
        }
        for invalid in [
            "",
            "00000003-0000001B",
            "00000003-0000001b-1",
            "00000003-0000001B-1-2",
            "00000003--1",
            "00000003-0000001B-A",
            "00000003-0000001B-1'; DROP TABLE x; --",
            "' OR '1",
            " 00000003-0000001B-1",
        ] {
            assert_eq!(SnapshotId::parse(invalid), None, "{invalid:?}");
        }
    }

    #[test]
    fn readers_begin_on_the_exported_snapshot() {
        let id = SnapshotId::parse("00000003-0000001B-1").unwrap();
        assert_eq!(
            begin_import(&id),
            "SET idle_in_transaction_session_timeout = 0; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
             SET TRANSACTION SNAPSHOT '00000003-0000001B-1'"
        );
    }
}
