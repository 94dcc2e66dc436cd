//! Every SQL Server error becomes a [`dmf_core::Error`] here, in one place: its [`ErrorKind`]
//! comes from the error number ([`number_kind`]) or the kind of connection failure
//! ([`error_kind`]), so the engine knows whether to retry, bisect or stop; its message names
//! what was being done (table, statement) and SQL Server's own words.

use dmf_core::{Error, ErrorKind, Stage};

use crate::executor::SqlError;

/// The kind of failure a SQL Server error number stands for.
///
/// | number | meaning | kind |
/// |---|---|---|
/// | 1205 | chosen as deadlock victim | transient |
/// | 1222 | lock request time-out | transient |
/// | -2 | client timeout (ADO.NET's number; tiberius reports an I/O `TimedOut`) | transient |
/// | 233, 10053, 10054, 10060 | connection closed or reset by the server or network | transient |
/// | 40613, 40197, 40501, 49918, 49919, 49920 | Azure SQL: database unavailable, service error, service busy, not enough resources / too many requests | transient |
/// | 2627, 2601 | unique / primary key violation | data |
/// | 547 | foreign-key or check constraint violation | data |
/// | 515 | NULL into a NOT NULL column | data |
/// | 8152, 2628 | string or binary data would be truncated | data |
/// | 245, 8114, 241, 8115, 220, 232, 242, 295, 8169 | conversion failed, arithmetic overflow, out-of-range date, bad GUID | data |
/// | 18456 | login failed | fatal |
/// | 208, 207 | invalid object / column name | fatal |
/// | 4060 | cannot open database | fatal |
/// | 229, 262, 297, 300 | permission denied | fatal |
/// | anything else | syntax, configuration, disk full… | fatal |
///
/// ```
/// use dmf_core::ErrorKind;
/// assert_eq!(dmf_mssql::number_kind(1205), ErrorKind::Transient);
/// assert_eq!(dmf_mssql::number_kind(2627), ErrorKind::Data);
/// assert_eq!(dmf_mssql::number_kind(18456), ErrorKind::Fatal);
/// ```
pub fn number_kind(number: i64) -> ErrorKind {
    match number {
        1205 | 1222 | -2 | 233 | 10053 | 10054 | 10060 | 40613 | 40197 | 40501 | 49918 | 49919 | 49920 => {
            ErrorKind::Transient
        }
        2627 | 2601 | 547 | 515 | 8152 | 2628 | 245 | 8114 | 241 | 8115 | 220 | 232 | 242 | 295 | 8169 => {
            ErrorKind::Data
        }
        _ => ErrorKind::Fatal,
    }
}

/// The kind of any error on the way to SQL Server: by number for server errors (and transient
/// for Babelfish's "could not open relation with OID", a table dropped by another session
/// while a catalog query ran); transient when the connection broke or timed out (I/O errors, a poisoned connection, no connection
/// free in the pool); data when a value did not convert for the bulk load; fatal for TLS and
/// redirect failures.
pub fn error_kind(error: &SqlError) -> ErrorKind {
    match error {
        // Babelfish (PostgreSQL underneath) when a catalog query meets a table that another
        // session dropped meanwhile; read again, the catalog is read as it now is.
        SqlError::Server { message, .. } if message.contains("could not open relation with OID") => {
            ErrorKind::Transient
        }
        SqlError::Server { number, .. } => number_kind(i64::from(*number)),
        SqlError::Io { .. } | SqlError::Pool(_) => ErrorKind::Transient,
        // tiberius reports a connection left unusable by a cancelled call or a command
        // timeout as a protocol error; a fresh connection (the retry) is fine.
        SqlError::Protocol(message) if message.contains("open a new connection") => ErrorKind::Transient,
        SqlError::Conversion(_) => ErrorKind::Data,
        SqlError::Protocol(_) | SqlError::Tls(_) | SqlError::Routing { .. } => ErrorKind::Fatal,
    }
}

/// Wraps `error` as a [`dmf_core::Error`] of `stage`, classified by [`error_kind`], with a
/// message starting with `doing` (what was being done, naming the table) followed by SQL
/// Server's message and number.
pub fn to_dmf_error(error: SqlError, stage: Stage, doing: impl AsRef<str>) -> Error {
    let kind = error_kind(&error);
    let hint = match error.number() {
        Some(297 | 300) => "; the pre-flight DMVs need VIEW SERVER STATE",
        Some(976 | 978) => "; this is a secondary replica: connect through the availability group listener",
        Some(18456) => "; check the login name and password, and that SQL Server authentication is enabled",
        Some(3021) => "; BACKUP and RESTORE cannot run inside a transaction",
        _ => "",
    };
    let message = format!("{}: {error}{hint}", doing.as_ref());
    Error::with_source(stage, kind, message, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! number_tests {
        ($($name:ident: $number:literal => $kind:ident,)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(number_kind($number), ErrorKind::$kind, "error {}", $number);
                if let Ok(number) = u32::try_from($number) {
                    let error = SqlError::server(number, "message");
                    assert_eq!(error_kind(&error), ErrorKind::$kind, "server error {}", $number);
                }
            }
        )*};
    }

    #[test]
    fn a_relation_dropped_under_a_babelfish_catalog_query_is_transient() {
        let error = SqlError::server(33557097, "could not open relation with OID 67573");
        assert_eq!(error_kind(&error), ErrorKind::Transient);
        assert_eq!(error_kind(&SqlError::server(33557097, "relation \"x\" does not exist")), ErrorKind::Fatal);
    }

    number_tests! {
        deadlock_victim_1205_is_transient: 1205 => Transient,
        lock_request_timeout_1222_is_transient: 1222 => Transient,
        client_timeout_minus_2_is_transient: -2 => Transient,
        connection_closed_233_is_transient: 233 => Transient,
        connection_aborted_10053_is_transient: 10053 => Transient,
        connection_reset_10054_is_transient: 10054 => Transient,
        connection_timed_out_10060_is_transient: 10060 => Transient,
        azure_database_unavailable_40613_is_transient: 40613 => Transient,
        azure_service_error_40197_is_transient: 40197 => Transient,
        azure_service_busy_40501_is_transient: 40501 => Transient,
        azure_not_enough_resources_49918_is_transient: 49918 => Transient,
        azure_too_many_create_update_49919_is_transient: 49919 => Transient,
        azure_too_many_operations_49920_is_transient: 49920 => Transient,
        primary_key_violation_2627_is_data: 2627 => Data,
        unique_index_violation_2601_is_data: 2601 => Data,
        constraint_violation_547_is_data: 547 => Data,
        null_into_not_null_515_is_data: 515 => Data,
        truncation_8152_is_data: 8152 => Data,
        truncation_with_column_2628_is_data: 2628 => Data,
        conversion_failed_245_is_data: 245 => Data,
        error_converting_8114_is_data: 8114 => Data,
        date_conversion_241_is_data: 241 => Data,
        arithmetic_overflow_8115_is_data: 8115 => Data,
        arithmetic_overflow_220_is_data: 220 => Data,
        arithmetic_overflow_232_is_data: 232 => Data,
        date_out_of_range_242_is_data: 242 => Data,
        smalldatetime_conversion_295_is_data: 295 => Data,
        uniqueidentifier_conversion_8169_is_data: 8169 => Data,
        login_failed_18456_is_fatal: 18456 => Fatal,
        invalid_object_208_is_fatal: 208 => Fatal,
        invalid_column_207_is_fatal: 207 => Fatal,
        cannot_open_database_4060_is_fatal: 4060 => Fatal,
        permission_denied_229_is_fatal: 229 => Fatal,
        view_state_denied_262_is_fatal: 262 => Fatal,
        view_server_state_297_is_fatal: 297 => Fatal,
        view_database_state_300_is_fatal: 300 => Fatal,
        syntax_error_102_is_fatal: 102 => Fatal,
        identity_insert_8107_is_fatal: 8107 => Fatal,
        merge_duplicate_source_key_8672_is_fatal: 8672 => Fatal,
        log_full_9002_is_fatal: 9002 => Fatal,
    }

    #[test]
    fn broken_connections_are_transient() {
        for kind in [std::io::ErrorKind::ConnectionReset, std::io::ErrorKind::TimedOut, std::io::ErrorKind::BrokenPipe]
        {
            assert_eq!(error_kind(&SqlError::Io { kind, message: "x".into() }), ErrorKind::Transient, "{kind:?}");
        }
        assert_eq!(error_kind(&SqlError::Pool("busy".into())), ErrorKind::Transient);
        let poisoned = SqlError::Protocol(
            "connection was left out of sync with the server by a command timeout (the previous response is only \
             partly read) and can no longer be used; open a new connection"
                .into(),
        );
        assert_eq!(error_kind(&poisoned), ErrorKind::Transient);
        assert_eq!(error_kind(&SqlError::Protocol("Login ACK: Invalid TDS version".into())), ErrorKind::Fatal);
        assert_eq!(error_kind(&SqlError::Tls("UnsupportedCertVersion".into())), ErrorKind::Fatal);
        let tls = SqlError::from(tiberius::error::Error::Tls(
            "the server's certificate was rejected during the TLS handshake: InvalidCertificate(NotValidForName). To \
             connect anyway you can: (1) trust a specific CA certificate with `Config::trust_cert_ca(path)`"
                .into(),
        ))
        .to_string();
        assert!(
            tls.starts_with("TLS handshake with SQL Server failed: wrong host name: the certificate does not name"),
            "{tls}"
        );
        assert!(tls.ends_with("trust_server_certificate=true on a trusted network only"), "{tls}");
        assert!(!tls.contains("Config::trust_cert_ca"), "{tls}");
        assert_eq!(error_kind(&SqlError::Routing { host: "h".into(), port: 1 }), ErrorKind::Fatal);
        assert_eq!(error_kind(&SqlError::Conversion("expecting int but found string".into())), ErrorKind::Data);
    }

    #[test]
    fn messages_say_what_was_done_and_what_sql_server_said() {
        let error = to_dmf_error(
            SqlError::server(2627, "Violation of PRIMARY KEY constraint 'PK_T'."),
            Stage::Load,
            "upserting 10 rows of dbo.T",
        );
        assert_eq!(
            error.to_string(),
            "load failed: upserting 10 rows of dbo.T: SQL Server error 2627 (severity 16, state 1): Violation of \
             PRIMARY KEY constraint 'PK_T'."
        );
        assert_eq!(error.kind(), ErrorKind::Data);
        let denied = to_dmf_error(SqlError::server(297, "denied"), Stage::Preflight, "reading replica states");
        assert!(denied.to_string().ends_with("; the pre-flight DMVs need VIEW SERVER STATE"), "{denied}");
    }
}
