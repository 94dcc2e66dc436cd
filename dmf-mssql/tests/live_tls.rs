//! Live (needs `DMF_TEST_MSSQL_URL`): encrypted connections to the TDS server. `Encrypt=true`
//! with `TrustServerCertificate=true` runs a sync over TLS; with the server's own certificate
//! given as the CA (`trust_server_certificate_ca`), a certificate that does not verify fails
//! the connection with an error naming the server and the reason, never in clear.
//! `DMF_TEST_MSSQL_TLS_CA` names the server's certificate (scripts/test sets it for Babelfish,
//! whose `bbf.sh` makes a self-signed one for `CN=localhost` without a subject alternative
//! name, which rustls does not accept for any host name).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod live_common;

use dmf_core::CheckStatus;
use dmf_core::sync::{Database, DatabaseRole};
use dmf_mssql::{MssqlConfig, MssqlDatabase, MssqlOptions};
use live_common::{TestDb, server_url};

/// `url` (an `mssql://` URL with `encrypt=off`) with `extra` in place of its encryption keys.
fn with_tls(url: &str, extra: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let kept: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("encrypt=")).collect();
    let mut all = kept.join("&");
    if !all.is_empty() {
        all.push('&');
    }
    format!("{base}?{all}{extra}")
}

/// An `Encrypt=true` connection (`TrustServerCertificate=true`: any certificate) to the test
/// database `db`.
async fn database(url: &str, db: &TestDb, tls: &str) -> MssqlDatabase {
    let config = MssqlConfig::parse(&with_tls(url, tls)).unwrap().with_database(&db.name);
    MssqlDatabase::from_config(config, MssqlOptions::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
async fn an_encrypted_connection_runs_preflight_and_the_control_plane() {
    let url = server_url("tls").await;
    let db = TestDb::create(&url, "tls").await;
    let encrypted = database(&url, &db, "encrypt=true&trust_server_certificate=true").await;
    let outcomes = encrypted.preflight(DatabaseRole::Target).await;
    assert!(outcomes.iter().all(|o| o.status != CheckStatus::Failed), "{outcomes:#?}");
    let store = encrypted.run_store().await.unwrap();
    let migration = dmf_core::MigrationName::new("dbo.t");
    let run = store.start_run(std::slice::from_ref(&migration), "host").await.unwrap();
    assert_eq!(store.run(run).await.unwrap().unwrap().id, run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    dmf_mssql_server = "none",
    ignore = "needs a TDS server: set DMF_TEST_MSSQL_URL (scripts/test starts Babelfish)"
)]
#[cfg_attr(
    all(not(dmf_mssql_server = "none"), not(dmf_mssql_tls_ca)),
    ignore = "needs the TDS server's certificate: set DMF_TEST_MSSQL_TLS_CA (scripts/test does for Babelfish)"
)]
async fn a_certificate_that_does_not_verify_is_refused_naming_the_server_the_mode_and_why() {
    let url = server_url("tls_ca").await;
    let db = TestDb::create(&url, "tls_ca").await;
    let ca = std::env::var("DMF_TEST_MSSQL_TLS_CA").unwrap();
    let verified = database(&url, &db, &format!("encrypt=true&trust_server_certificate_ca={ca}")).await;
    let error = verified.read_catalog().await.unwrap_err().chain();
    assert!(error.contains("127.0.0.1:"), "names the server: {error}");
    assert!(error.contains("TLS handshake with SQL Server failed: Encrypt=true ("), "names the mode: {error}");
    if cfg!(dmf_mssql_server = "babelfish") {
        assert!(error.contains("the server presents a CA certificate as its own"), "says why: {error}");
    }
    assert!(error.contains("trust_server_certificate_ca=PATH"), "says what to give: {error}");
}
