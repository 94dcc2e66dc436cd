//! A password given only through the environment (`PGPASSWORD`, a `${VAR}` in dmf.toml, a
//! password file) logs in for real (SCRAM over TLS) and is found nowhere: not on stdout or
//! stderr (with `RUST_LOG=debug`), not in the JSON document or report, not in the webhook's
//! body, not in any control table. A password given on the command line anyway is masked in
//! what `dmf` prints.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg_attr(not(dmf_test_pg_tls), allow(dead_code, unused_imports))]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

/// `DMF_TEST_PG_TLS_URL`'s user, host and port for `database`, without the password, and
/// the password.
fn password_url(database: &str) -> (String, String) {
    let base = std::env::var("DMF_TEST_PG_TLS_URL").expect("DMF_TEST_PG_TLS_URL");
    let config: tokio_postgres::Config = base.parse().unwrap();
    let password = String::from_utf8(config.get_password().unwrap().to_vec()).unwrap();
    let port = config.get_ports()[0];
    (format!("postgres://dmf_tls@localhost:{port}/{database}?sslmode=require"), password)
}

/// Receives HTTP requests on a loopback port, answers 200, and hands over each body.
fn webhook_receiver() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (bodies, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            if bodies.send(format!("{head}\n{}", String::from_utf8_lossy(&body))).is_err() {
                return;
            }
        }
    });
    (url, received)
}

#[test]
#[cfg_attr(
    not(dmf_test_pg_tls),
    ignore = "needs a PostgreSQL role that logs in by password: set DMF_TEST_PG_TLS_URL (scripts/test starts one)"
)]
fn a_password_from_the_environment_is_used_and_appears_nowhere() {
    let pair = common::PgPair::new("secret");
    let source_db = pair.source.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let target_db = pair.target.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    let (source, password) = password_url(&source_db);
    let (target, _) = password_url(&target_db);
    let source_with_password = source.replacen("dmf_tls@", &format!("dmf_tls:{password}@"), 1);
    let dir = pair.dir.path();
    std::fs::write(dir.join("dmf.toml"), "source = \"${DMF_TEST_SECRET_SOURCE}\"\nexclude = [\"audit_log\"]\n")
        .unwrap();

    // Without the password the target refuses the login: it is really asked for.
    let refused = common::dmf(dir)
        .args(["check"])
        .env("DMF_TEST_SECRET_SOURCE", &source_with_password)
        .env("DMF_TARGET_URL", &target)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(3), "{}", common::both(&refused));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("password"), "{}", common::both(&refused));

    let (webhook, bodies) = webhook_receiver();
    let output = common::dmf(dir)
        .args(["--json", "sync", "--notify-webhook", &webhook, "--report-json", "report.json"])
        .env("DMF_TEST_SECRET_SOURCE", &source_with_password)
        .env("DMF_TARGET_URL", &target)
        .env("PGPASSWORD", &password)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", common::both(&output));
    let document = common::document(&output);
    assert_eq!(document["run"]["totals"]["inserted"], 90, "{document}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.contains("DEBUG"), "RUST_LOG=debug took effect: {stderr}");

    let mut places = vec![
        ("stdout", String::from_utf8_lossy(&output.stdout).into_owned()),
        ("stderr", stderr),
        ("report", std::fs::read_to_string(dir.join("report.json")).unwrap()),
        ("webhook body", bodies.recv_timeout(std::time::Duration::from_secs(60)).unwrap()),
    ];
    // Every row of every control table, as text.
    for table in pair
        .query_text(&pair.target, "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'dmf'")
    {
        let rows = pair.query_text(&pair.target, &format!("SELECT string_agg(t::text, E'\\n') FROM dmf.\"{table}\" t"));
        places.push((Box::leak(format!("control table dmf.{table}").into_boxed_str()), rows.join("\n")));
    }
    assert!(places.len() >= 8, "the control tables were read: {:?}", places.iter().map(|p| p.0).collect::<Vec<_>>());
    // `runs` and `runs show` over the same records, and a password file instead of PGPASSWORD.
    let pgpass = dir.join("pgpass");
    std::fs::write(&pgpass, format!("localhost:*:*:dmf_tls:{password}\n")).unwrap();
    #[cfg(unix)]
    #[cfg(unix)]
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    for args in [&["--json", "runs"][..], &["--json", "runs", "show", "last"]] {
        let output =
            common::dmf(dir).args(args).env("DMF_TARGET_URL", &target).env("PGPASSFILE", &pgpass).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", common::both(&output));
        places.push(("runs", common::both(&output)));
    }
    for (place, text) in &places {
        assert!(!text.contains(&password), "the password is in the {place}:\n{text}");
    }

    // Given on the command line anyway, it is masked in everything printed, errors included.
    let target_with_password = target.replacen("dmf_tls@", &format!("dmf_tls:{password}@"), 1);
    for args in [
        vec!["--json", "check", "--target", target_with_password.as_str()],
        vec!["--json", "check", "--target", &target_with_password.replace(&target_db, "no_such_database")],
    ] {
        let output =
            common::dmf(dir).args(&args).env("DMF_TEST_SECRET_SOURCE", &source_with_password).output().unwrap();
        let text = common::both(&output);
        assert!(!text.contains(&password), "the password is in:\n{text}");
    }
}
