//! Every tokio-postgres error becomes a [`dmf_core::Error`] here, in one place: its
//! [`ErrorKind`] comes from the SQLSTATE (so the engine knows whether to retry, bisect or
//! stop), and its message names what was being done and the table, column and constraint
//! PostgreSQL reports.

use std::fmt::Write as _;

use dmf_core::{Error, ErrorKind, Stage};

/// The kind of failure a SQLSTATE code stands for.
///
/// | SQLSTATE | meaning | kind |
/// |---|---|---|
/// | class `08` | connection exception | transient |
/// | `40001`, `40P01` | serialization failure, deadlock | transient |
/// | `55P03` | lock not available | transient |
/// | `57P01`, `57P02`, `57P03` | admin shutdown, crash shutdown, cannot connect now | transient |
/// | `53300` | too many connections | transient |
/// | — | connection closed, I/O error, timeout | transient |
/// | class `22` | data exception (bad value, overflow, bad encoding…) | data |
/// | `23503` | foreign-key violation: the parent row is missing | missing parent |
/// | class `23` | other integrity constraint violations (unique, not null, check) | data |
/// | anything else | authentication (`28`), syntax or undefined object (`42`), unknown database (`3D000`)… | fatal |
///
/// ```
/// use dmf_core::ErrorKind;
/// assert_eq!(dmf_postgres::sqlstate_kind("40P01"), ErrorKind::Transient);
/// assert_eq!(dmf_postgres::sqlstate_kind("23505"), ErrorKind::Data);
/// assert_eq!(dmf_postgres::sqlstate_kind("23503"), ErrorKind::MissingParent);
/// assert_eq!(dmf_postgres::sqlstate_kind("42P01"), ErrorKind::Fatal);
/// ```
pub fn sqlstate_kind(code: &str) -> ErrorKind {
    match code {
        "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300" => ErrorKind::Transient,
        code if code.starts_with("08") => ErrorKind::Transient,
        "23503" => ErrorKind::MissingParent,
        code if code.starts_with("22") || code.starts_with("23") => ErrorKind::Data,
        _ => ErrorKind::Fatal,
    }
}

/// The kind of a tokio-postgres error: by SQLSTATE when the server sent one, transient when
/// the connection was lost (closed, I/O error, timeout), fatal otherwise (a value that does
/// not convert, a bad configuration).
pub fn error_kind(error: &tokio_postgres::Error) -> ErrorKind {
    match error.code() {
        Some(code) => sqlstate_kind(code.code()),
        None if connection_lost(error) => ErrorKind::Transient,
        None => ErrorKind::Fatal,
    }
}

/// True when `error` is about one row's content (a constraint or a value), which isolating the
/// row can attribute.
pub(crate) fn is_row_error(error: &tokio_postgres::Error) -> bool {
    matches!(error_kind(error), ErrorKind::Data | ErrorKind::MissingParent)
}

/// Wraps `error` as a [`dmf_core::Error`] of `stage`, classified by [`error_kind`], with a
/// message starting with `doing` (what was being done, naming the table), then PostgreSQL's
/// message, SQLSTATE, table, column, constraint, detail and hint.
pub fn to_dmf_error(error: tokio_postgres::Error, stage: Stage, doing: impl AsRef<str>) -> Error {
    let kind = error_kind(&error);
    let message = describe(doing.as_ref(), &error);
    Error::with_source(stage, kind, message, error)
}

/// True when the connection cannot be used any more: it was closed or broke (I/O error,
/// timeout), or the server said it is going away. The client is then dropped and the next use
/// opens a new connection.
pub(crate) fn connection_lost(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
        None => io_cause(error).is_some() || error.to_string() == "timeout waiting for server",
    }
}

fn io_cause(error: &tokio_postgres::Error) -> Option<&std::io::Error> {
    let mut cause = std::error::Error::source(error);
    while let Some(next) = cause {
        if let Some(io) = next.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = next.source();
    }
    None
}

/// The fields of a server error that locate it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ServerError<'a> {
    pub code: &'a str,
    pub message: &'a str,
    pub schema: Option<&'a str>,
    pub table: Option<&'a str>,
    pub column: Option<&'a str>,
    pub constraint: Option<&'a str>,
    pub detail: Option<&'a str>,
    pub hint: Option<&'a str>,
}

impl ServerError<'_> {
    /// `doing: message (SQLSTATE c; table s.t; column x; constraint k); detail: …; hint: …`.
    pub(crate) fn describe(&self, doing: &str) -> String {
        let mut text = format!("{doing}: {} (SQLSTATE {}", self.message, self.code);
        match (self.schema, self.table) {
            (Some(schema), Some(table)) => {
                let _ = write!(text, "; table {schema}.{table}");
            }
            (None, Some(table)) => {
                let _ = write!(text, "; table {table}");
            }
            _ => {}
        }
        if let Some(column) = self.column {
            let _ = write!(text, "; column {column}");
        }
        if let Some(constraint) = self.constraint {
            let _ = write!(text, "; constraint {constraint}");
        }
        text.push(')');
        if let Some(detail) = self.detail {
            let _ = write!(text, "; detail: {detail}");
        }
        if let Some(hint) = self.hint {
            let _ = write!(text, "; hint: {hint}");
        }
        text
    }
}

/// `doing`, then what the server or the driver said (see [`to_dmf_error`]).
pub(crate) fn describe(doing: &str, error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return ServerError {
            code: db.code().code(),
            message: db.message(),
            schema: db.schema(),
            table: db.table(),
            column: db.column(),
            constraint: db.constraint(),
            detail: db.detail(),
            hint: db.hint(),
        }
        .describe(doing);
    }
    // The driver's own errors are terse ("error connecting to server"): add their causes.
    let mut text = format!("{doing}: {error}");
    let mut cause = std::error::Error::source(error);
    while let Some(next) = cause {
        let _ = write!(text, ": {next}");
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! sqlstate_tests {
        ($($name:ident: $code:literal => $kind:ident,)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(sqlstate_kind($code), ErrorKind::$kind, "SQLSTATE {}", $code);
            }
        )*};
    }

    sqlstate_tests! {
        connection_exception_08000_is_transient: "08000" => Transient,
        connection_does_not_exist_08003_is_transient: "08003" => Transient,
        connection_failure_08006_is_transient: "08006" => Transient,
        cannot_establish_connection_08001_is_transient: "08001" => Transient,
        connection_rejected_08004_is_transient: "08004" => Transient,
        protocol_violation_08p01_is_transient: "08P01" => Transient,
        serialization_failure_40001_is_transient: "40001" => Transient,
        deadlock_detected_40p01_is_transient: "40P01" => Transient,
        lock_not_available_55p03_is_transient: "55P03" => Transient,
        admin_shutdown_57p01_is_transient: "57P01" => Transient,
        crash_shutdown_57p02_is_transient: "57P02" => Transient,
        cannot_connect_now_57p03_is_transient: "57P03" => Transient,
        too_many_connections_53300_is_transient: "53300" => Transient,
        invalid_text_representation_22p02_is_data: "22P02" => Data,
        numeric_value_out_of_range_22003_is_data: "22003" => Data,
        string_data_right_truncation_22001_is_data: "22001" => Data,
        datetime_field_overflow_22008_is_data: "22008" => Data,
        character_not_in_repertoire_22021_is_data: "22021" => Data,
        unique_violation_23505_is_data: "23505" => Data,
        foreign_key_violation_23503_is_a_missing_parent: "23503" => MissingParent,
        not_null_violation_23502_is_data: "23502" => Data,
        check_violation_23514_is_data: "23514" => Data,
        invalid_password_28p01_is_fatal: "28P01" => Fatal,
        invalid_authorization_28000_is_fatal: "28000" => Fatal,
        undefined_table_42p01_is_fatal: "42P01" => Fatal,
        undefined_column_42703_is_fatal: "42703" => Fatal,
        syntax_error_42601_is_fatal: "42601" => Fatal,
        insufficient_privilege_42501_is_fatal: "42501" => Fatal,
        invalid_catalog_name_3d000_is_fatal: "3D000" => Fatal,
        read_only_transaction_25006_is_fatal: "25006" => Fatal,
        feature_not_supported_0a000_is_fatal: "0A000" => Fatal,
        disk_full_53100_is_fatal: "53100" => Fatal,
        query_canceled_57014_is_fatal: "57014" => Fatal,
    }

    #[test]
    fn server_errors_name_table_column_constraint_and_detail() {
        let error = ServerError {
            code: "23505",
            message: "duplicate key value violates unique constraint \"orders_pkey\"",
            schema: Some("public"),
            table: Some("orders"),
            constraint: Some("orders_pkey"),
            detail: Some("Key (id)=(5) already exists."),
            ..ServerError::default()
        };
        assert_eq!(
            error.describe("loading 10 rows into public.orders"),
            "loading 10 rows into public.orders: duplicate key value violates unique constraint \"orders_pkey\" \
             (SQLSTATE 23505; table public.orders; constraint orders_pkey); detail: Key (id)=(5) already exists."
        );
        let not_null = ServerError {
            code: "23502",
            message: "null value in column \"name\" of relation \"user\" violates not-null constraint",
            table: Some("user"),
            column: Some("name"),
            hint: Some("fill it"),
            ..ServerError::default()
        };
        assert_eq!(
            not_null.describe("loading"),
            "loading: null value in column \"name\" of relation \"user\" violates not-null constraint \
             (SQLSTATE 23502; table user; column name); hint: fill it"
        );
    }
}
