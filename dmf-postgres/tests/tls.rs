//! TLS to PostgreSQL in libpq's modes, against the test cluster of `scripts/pg-cluster.sh`:
//! `ssl = on` with a certificate for `localhost` and `127.0.0.1` signed by a test CA, the role
//! `dmf_tls` refused without TLS by `pg_hba.conf` (so whatever succeeds as it went over TLS)
//! and the role `dmf_cert` logged in by its client certificate. Also two servers that are
//! not PostgreSQL: one that refuses TLS, one whose certificate names another host.
//!
//! Needs `DMF_TEST_PG_TLS_URL` and `DMF_TEST_PG_TLS_DIR` (`bash scripts/test` sets them);
//! without them every test is listed as ignored, with that reason.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg_attr(not(dmf_test_pg_tls), allow(dead_code, unused_imports))]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use dmf_core::sync::{Database, SyncJob, SyncMode};
use dmf_core::{EngineConfig, ErrorKind, RunRequest};
use dmf_postgres::{PgBackup, PgDatabase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn certs() -> PathBuf {
    PathBuf::from(std::env::var("DMF_TEST_PG_TLS_DIR").expect("DMF_TEST_PG_TLS_DIR"))
}

fn cert(name: &str) -> String {
    certs().join(name).display().to_string()
}

/// `DMF_TEST_PG_TLS_URL` (user `dmf_tls`, host `localhost`) for database `database`, with
/// `host` instead of its host when given, and the query `query`.
fn tls_url(database: &str, host: Option<&str>, query: &str) -> String {
    let base = std::env::var("DMF_TEST_PG_TLS_URL").expect("DMF_TEST_PG_TLS_URL");
    let mut url = common::with_database(&base, database);
    if let Some(host) = host {
        url = url.replacen("@localhost:", &format!("@{host}:"), 1);
    }
    format!("{url}?{query}")
}

fn port() -> u16 {
    let base = std::env::var("DMF_TEST_PG_TLS_URL").expect("DMF_TEST_PG_TLS_URL");
    base.parse::<tokio_postgres::Config>().unwrap().get_ports()[0]
}

fn verify_full() -> String {
    format!("sslmode=verify-full&sslrootcert={}", cert("ca.crt"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(dmf_test_pg_tls),
    ignore = "needs a PostgreSQL server with TLS: set DMF_TEST_PG_TLS_URL and DMF_TEST_PG_TLS_DIR (scripts/test starts one)"
)]
async fn verify_full_with_the_ca_syncs_verifies_backs_up_and_rolls_back_over_tls() {
    let (source_db, target_db) = common::rich_pair("tls").await;
    // dmf_tls may only log in over TLS: every connection below, pg_dump's and pg_restore's
    // included, is encrypted, and verified against the test CA and the host name.
    let source = Arc::new(PgDatabase::connect(&tls_url(&source_db.name, None, &verify_full())).await.unwrap());
    let target_url = tls_url(&target_db.name, None, &verify_full());
    let target = Arc::new(PgDatabase::connect(&target_url).await.unwrap());
    let before = common::fingerprints(&target_db.client().await).await;

    let dir = std::env::temp_dir().join(format!("dmf-tls-dump-{}", std::process::id()));
    let job = SyncJob::new(source.clone(), target.clone(), SyncMode::Full)
        .engine(EngineConfig::builder().batch_size(500).build().unwrap())
        .backup(PgBackup::new(&target_url, &dir).unwrap());
    let summary = job.run(RunRequest::all().force()).await.unwrap();
    assert!(summary.succeeded(), "{summary}");
    let backup = summary.backup.clone().expect("pg_dump ran over TLS before the first write");
    assert!(std::path::Path::new(&backup.location).exists());
    assert_eq!(
        common::fingerprints(&target_db.client().await).await,
        common::fingerprints(&source_db.client().await).await,
        "the sync copied every row"
    );

    let plan = job.plan().await.unwrap();
    let report = dmf_core::quality::verify(source.as_ref(), target.as_ref(), &plan, &[], 10).await.unwrap();
    assert!(report.passed(), "{report}");

    let (run, _) = job.rollback(None, false).await.unwrap();
    assert_eq!(run, summary.run);
    assert_eq!(common::fingerprints(&target_db.client().await).await, before, "pg_restore over TLS put it back");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
#[cfg_attr(
    not(dmf_test_pg_tls),
    ignore = "needs a PostgreSQL server with TLS: set DMF_TEST_PG_TLS_URL and DMF_TEST_PG_TLS_DIR (scripts/test starts one)"
)]
async fn verify_full_with_another_ca_is_refused_naming_the_server_the_mode_and_unknown_ca() {
    let url = tls_url("postgres", None, &format!("sslmode=verify-full&sslrootcert={}", cert("other-ca.crt")));
    let error = PgDatabase::connect(&url).await.unwrap_err();
    let text = error.to_string();
    assert_eq!(error.kind(), ErrorKind::Fatal, "trying again cannot help: {text}");
    assert!(text.contains(&format!("dmf_tls@localhost:{}/postgres", port())), "{text}");
    assert!(text.contains("sslmode=verify-full"), "{text}");
    assert!(text.contains("other-ca.crt"), "{text}");
    assert!(text.contains("the server's certificate was refused: unknown CA"), "{text}");
    assert!(!text.contains("dmf-tls-secret"), "{text}");
}

#[tokio::test]
#[cfg_attr(
    not(dmf_test_pg_tls),
    ignore = "needs a PostgreSQL server with TLS: set DMF_TEST_PG_TLS_URL and DMF_TEST_PG_TLS_DIR (scripts/test starts one)"
)]
async fn verify_full_to_127_0_0_1_showing_a_certificate_for_another_name_is_refused() {
    // A TLS server on 127.0.0.1 whose certificate, signed by the test CA, names
    // db.other.example only.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tls_acceptor("other-name");
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0_u8; 8];
        socket.read_exact(&mut request).await.unwrap();
        assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47], "PostgreSQL's SSLRequest");
        socket.write_all(b"S").await.unwrap();
        acceptor.accept(socket).await.map(|_| ())
    });
    let url = format!("postgres://dmf_tls@127.0.0.1:{port}/postgres?{}", verify_full());
    let error = PgDatabase::connect(&url).await.unwrap_err();
    let text = error.to_string();
    assert_eq!(error.kind(), ErrorKind::Fatal, "{text}");
    assert!(text.contains(&format!("dmf_tls@127.0.0.1:{port}/postgres (sslmode=verify-full")), "{text}");
    assert!(text.contains("wrong host name: it is not issued for `127.0.0.1`"), "{text}");
    assert!(text.contains("but for db.other.example"), "{text}");
    assert!(server.await.unwrap().is_err(), "the client broke off the handshake");
}

#[tokio::test]
#[cfg_attr(
    not(dmf_test_pg_tls),
    ignore = "needs a PostgreSQL server with TLS: set DMF_TEST_PG_TLS_URL and DMF_TEST_PG_TLS_DIR (scripts/test starts one)"
)]
async fn verify_ca_checks_the_chain_but_not_the_host_name_and_verify_full_checks_both() {
    // PostgreSQL itself, reached at 127.0.0.1 but asked as db.other.example (a key=value
    // string, with hostaddr): the certificate is for localhost and 127.0.0.1.
    let settings = |mode: &str| {
        format!(
            "host=db.other.example hostaddr=127.0.0.1 port={} user=dmf_tls password='dmf-tls-secret' dbname=postgres \
             sslmode={mode} sslrootcert='{}'",
            port(),
            cert("ca.crt")
        )
    };
    let database = PgDatabase::connect(&settings("verify-ca")).await.unwrap();
    database.read_catalog().await.unwrap();
    let text = PgDatabase::connect(&settings("verify-full")).await.unwrap_err().to_string();
    assert!(
        text.contains("wrong host name: it is not issued for `db.other.example` but for localhost, 127.0.0.1"),
        "{text}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(dmf_test_pg_tls),
    ignore = "needs a PostgreSQL server with TLS: set DMF_TEST_PG_TLS_URL and DMF_TEST_PG_TLS_DIR (scripts/test starts one)"
)]
async fn require_without_a_root_certificate_encrypts_without_verifying() {
    // To 127.0.0.1 as db.other.example (a name the certificate lacks), with no CA: accepted,
    // as libpq's require does; dmf_tls's login proves the connection is encrypted.
    let settings = format!(
        "host=db.other.example hostaddr=127.0.0.1 port={} user=dmf_tls password=dmf-tls-secret dbname=postgres \
         sslmode=require",
        port()
    );
    PgDatabase::connect(&settings).await.unwrap().read_catalog().await.unwrap();
}

#[tokio::test]
#[cfg_attr(
    not(dmf_test_pg_tls),
    ignore = "needs a PostgreSQL server with TLS: set DMF_TEST_PG_TLS_URL and DMF_TEST_PG_TLS_DIR (scripts/test starts one)"
)]
async fn prefer_and_allow_use_tls_when_the_server_requires_it() {
    // prefer (the default) asks for TLS first; allow asks without, is refused by pg_hba.conf,
    // and asks again with TLS, as libpq does.
    for query in ["application_name=dmf-default", "sslmode=prefer", "sslmode=allow"] {
        let url = tls_url("postgres", None, query);
        PgDatabase::connect(&url).await.unwrap_or_else(|e| panic!("{query}: {e}"));
    }
}

#[tokio::test]
#[cfg_attr(
    not(dmf_test_pg_tls),
    ignore = "needs a PostgreSQL server with TLS: set DMF_TEST_PG_TLS_URL and DMF_TEST_PG_TLS_DIR (scripts/test starts one)"
)]
async fn disable_against_a_hostssl_only_role_is_refused_with_postgresql_message() {
    let error = PgDatabase::connect(&tls_url("postgres", Some("127.0.0.1"), "sslmode=disable")).await.unwrap_err();
    let text = error.to_string();
    assert_eq!(error.kind(), ErrorKind::Fatal, "{text}");
    assert!(
        text.contains(
            r#"pg_hba.conf rejects connection for host "127.0.0.1", user "dmf_tls", database "postgres", no encryption"#
        ),
        "{text}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(dmf_test_pg_tls),
    ignore = "needs a PostgreSQL server with TLS: set DMF_TEST_PG_TLS_URL and DMF_TEST_PG_TLS_DIR (scripts/test starts one)"
)]
async fn a_client_certificate_logs_in_by_cert_authentication() {
    let url = |client: &str| format!("postgres://dmf_cert@localhost:{}/postgres?{}{client}", port(), verify_full());
    let with_cert = url(&format!("&sslcert={}&sslkey={}", cert("client.crt"), cert("client.key")));
    PgDatabase::connect(&with_cert).await.unwrap().read_catalog().await.unwrap();
    let text = PgDatabase::connect(&url("")).await.unwrap_err().to_string();
    assert!(text.contains("dmf_cert"), "without the certificate, refused: {text}");
}

#[tokio::test]
#[cfg_attr(
    not(dmf_test_pg_tls),
    ignore = "needs a PostgreSQL server with TLS: set DMF_TEST_PG_TLS_URL and DMF_TEST_PG_TLS_DIR (scripts/test starts one)"
)]
async fn require_against_a_server_refusing_tls_says_the_server_refused_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0_u8; 8];
        socket.read_exact(&mut request).await.unwrap();
        socket.write_all(b"N").await.unwrap();
        // Hold the socket until the client has given up.
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest).await;
    });
    let error =
        PgDatabase::connect(&format!("postgres://app@127.0.0.1:{port}/shop?sslmode=require")).await.unwrap_err();
    let text = error.to_string();
    assert_eq!(error.kind(), ErrorKind::Fatal, "{text}");
    assert!(text.contains(&format!("app@127.0.0.1:{port}/shop (sslmode=require): the server refused TLS")), "{text}");
    server.await.unwrap();
}

/// A TLS acceptor showing `<name>.crt` with its key, from the test certificates.
fn tls_acceptor(name: &str) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(certs().join(format!("{name}.crt")))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(certs().join(format!("{name}.key"))).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
