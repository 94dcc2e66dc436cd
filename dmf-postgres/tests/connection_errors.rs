//! Connection failures give one clear error naming the server as `user@host:port/dbname`,
//! never the password, classified so the engine knows whether retrying can help.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::sync::{Database, DatabaseRole};
use dmf_core::{CheckStatus, ErrorKind};
use dmf_postgres::PgDatabase;

fn server_host_port() -> (String, u16) {
    let config: tokio_postgres::Config = common::server_url().parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("DMF_TEST_PG_URL must use TCP, not {other:?}"),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

#[tokio::test]
async fn an_unreachable_server_is_named_and_worth_retrying() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://someone:s3cret-pw@127.0.0.1:{port}/shop");
    let server = format!("someone@127.0.0.1:{port}/shop");

    let error = PgDatabase::connect(&url).await.unwrap_err();
    let text = error.chain();
    assert!(text.starts_with(&format!("pre-flight failed: cannot connect to PostgreSQL at {server}: ")), "{text}");
    assert!(text.contains("Connection refused"), "{text}");
    assert!(!text.contains("s3cret-pw") && !format!("{error:?}").contains("s3cret-pw"), "{text}");
    assert_eq!(error.kind(), ErrorKind::Transient);

    let database = PgDatabase::lazy(&url).unwrap();
    assert_eq!(database.display_name(), server);
    let outcomes = database.preflight(DatabaseRole::Target).await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0].check, "target connectivity");
    assert_eq!(outcomes[0].status, CheckStatus::Failed);
    assert!(outcomes[0].detail.starts_with(&format!("cannot connect to PostgreSQL at {server}")), "{outcomes:?}");
}

/// Requires a password for one role only, for as long as it lives (the test cluster trusts
/// every other login), by editing `pg_hba.conf` through the superuser connection.
struct PasswordRequired {
    role: String,
    hba_file: String,
    original: String,
}

impl PasswordRequired {
    async fn new(admin: &tokio_postgres::Client) -> Self {
        let role = format!("dmf_pw_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        admin.batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'right-password'")).await.unwrap();
        let hba_file: String = admin.query_one("SELECT current_setting('hba_file')", &[]).await.unwrap().get(0);
        let original: String = admin.query_one("SELECT pg_read_file($1)", &[&hba_file]).await.unwrap().get(0);
        let required =
            format!("host all {role} 127.0.0.1/32 scram-sha-256\nhost all {role} ::1/128 scram-sha-256\n{original}");
        write_hba(admin, &hba_file, &required).await;
        Self { role, hba_file, original }
    }
}

async fn write_hba(admin: &tokio_postgres::Client, file: &str, content: &str) {
    assert!(!content.contains("$hba$") && !file.contains('\''));
    admin
        .batch_execute(&format!(
            "COPY (SELECT replace(line, E'\\t', ' ') FROM unnest(string_to_array($hba${content}$hba$, E'\\n')) AS line) \
             TO '{file}'; SELECT pg_reload_conf();"
        ))
        .await
        .unwrap();
}

impl Drop for PasswordRequired {
    fn drop(&mut self) {
        let (file, original, role) = (self.hba_file.clone(), self.original.clone(), self.role.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let admin = common::connect(&common::server_url()).await;
                write_hba(&admin, &file, &original).await;
                let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {role}")).await;
            });
        })
        .join();
    }
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_the_server_named() {
    let admin = common::connect(&common::server_url()).await;
    let guard = PasswordRequired::new(&admin).await;
    let (host, port) = server_host_port();
    let url = |password: &str| format!("postgres://{}:{password}@{host}:{port}/postgres", guard.role);

    // The server reloads its configuration asynchronously: wait until it asks for the
    // password (each attempt is a real login, bounded).
    let mut refused = None;
    for _ in 0..500 {
        match PgDatabase::connect(&url("wrong-password")).await {
            Ok(_) => tokio::task::yield_now().await,
            Err(error) => {
                refused = Some(error);
                break;
            }
        }
    }
    let error = refused.expect("the server never started asking for the password");
    let text = error.chain();
    let server = format!("{}@{host}:{port}/postgres", guard.role);
    assert!(text.contains(&format!("cannot connect to PostgreSQL at {server}: ")), "{text}");
    assert!(text.contains("password authentication failed for user"), "{text}");
    assert!(text.contains("SQLSTATE 28P01"), "{text}");
    assert!(!text.contains("wrong-password") && !format!("{error:?}").contains("wrong-password"), "{text}");
    assert_eq!(error.kind(), ErrorKind::Fatal, "retrying a wrong password cannot help");

    assert!(PgDatabase::connect(&url("right-password")).await.is_ok());
}

#[tokio::test]
async fn an_unknown_database_is_fatal_and_named() {
    let url = common::with_database(&common::server_url(), "no_such_database_here");
    let error = PgDatabase::connect(&url).await.unwrap_err();
    let text = error.chain();
    assert!(text.contains("/no_such_database_here: database \"no_such_database_here\" does not exist"), "{text}");
    assert!(text.contains("SQLSTATE 3D000"), "{text}");
    assert_eq!(error.kind(), ErrorKind::Fatal);
}
