//! rusqlite errors mapped into DMF's classification, in one place.

use dmf_core::{Error, ErrorKind, Stage};
use rusqlite::ffi;

/// The kind of a SQLite error: busy or locked databases are worth retrying; constraint
/// violations and type mismatches are about row content (a foreign-key violation says which:
/// a missing parent row); everything else is fatal.
pub fn kind_of(error: &rusqlite::Error) -> ErrorKind {
    match error {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked => ErrorKind::Transient,
            ffi::ErrorCode::ConstraintViolation if failure.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                ErrorKind::MissingParent
            }
            ffi::ErrorCode::ConstraintViolation | ffi::ErrorCode::TypeMismatch | ffi::ErrorCode::TooBig => {
                ErrorKind::Data
            }
            _ => ErrorKind::Fatal,
        },
        rusqlite::Error::ToSqlConversionFailure(_) | rusqlite::Error::IntegralValueOutOfRange(..) => ErrorKind::Data,
        _ => ErrorKind::Fatal,
    }
}

/// Wraps a rusqlite error with what DMF was doing (`context` names the table or file).
pub fn map(stage: Stage, context: impl Into<String>, error: rusqlite::Error) -> Error {
    let kind = kind_of(&error);
    Error::with_source(stage, kind, context, error)
}

/// An error for a task that panicked or was cancelled while it held the connection.
pub fn task_failed(stage: Stage, error: tokio::task::JoinError) -> Error {
    Error::with_source(stage, ErrorKind::Fatal, "a SQLite worker task failed", error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::os::raw::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn classification_by_code() {
        assert_eq!(kind_of(&failure(ffi::SQLITE_BUSY)), ErrorKind::Transient);
        assert_eq!(kind_of(&failure(ffi::SQLITE_LOCKED)), ErrorKind::Transient);
        assert_eq!(kind_of(&failure(ffi::SQLITE_CONSTRAINT_UNIQUE)), ErrorKind::Data);
        assert_eq!(kind_of(&failure(ffi::SQLITE_CONSTRAINT_FOREIGNKEY)), ErrorKind::MissingParent);
        assert_eq!(kind_of(&failure(ffi::SQLITE_CONSTRAINT_NOTNULL)), ErrorKind::Data);
        assert_eq!(kind_of(&failure(ffi::SQLITE_MISMATCH)), ErrorKind::Data);
        assert_eq!(kind_of(&failure(ffi::SQLITE_CANTOPEN)), ErrorKind::Fatal);
        assert_eq!(kind_of(&failure(ffi::SQLITE_READONLY)), ErrorKind::Fatal);
        assert_eq!(kind_of(&failure(ffi::SQLITE_FULL)), ErrorKind::Fatal);
        assert_eq!(kind_of(&rusqlite::Error::QueryReturnedNoRows), ErrorKind::Fatal);
    }
}
