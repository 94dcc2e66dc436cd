//! `dmf serve` over a target whose runs an earlier `dmf sync` process made: the API lists that
//! run and its tables from the control tables (the page itself is checked in headless
//! Chromium by scripts/serve-browser-test.sh).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};

/// Kills the server when the test ends, passed or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(address: &str, path: &str) -> serde_json::Value {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Runs `dmf sync` (one process), then `dmf serve` (another) over the same target, and asks
/// its API for what the first recorded.
fn serve_shows_the_runs_of_an_earlier_sync(dir: &std::path::Path, source: &str, target: &str) {
    common::dmf(dir)
        .args(["sync", "--source", source, "--target", target, "--exclude", "audit_log"])
        .assert()
        .success();

    let binary = assert_cmd::cargo::cargo_bin("dmf");
    let mut command = std::process::Command::new(binary);
    command
        .current_dir(dir)
        .args(["serve", "--target", target, "--bind", "127.0.0.1:0"])
        .env_remove("DMF_DASHBOARD_TOKEN")
        .env_remove("DMF_TARGET_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Server(command.spawn().unwrap());
    // The banner says where it listens, once it does: no waiting on time. The rest of stderr
    // is drained so that the server never writes into a closed pipe.
    let stderr = server.0.stderr.take().unwrap();
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((_, rest)) = line.split_once("serving http://") {
                let _ = found.send(rest.split('/').next().unwrap_or_default().to_owned());
            }
        }
    });
    let address = address.recv().expect("the server printed where it listens");

    let runs = get(&address, "/api/runs");
    let run = &runs["runs"][0];
    assert_eq!(run["status"], "completed", "{runs}");
    assert_eq!(run["totals"]["inserted"], 90, "{runs}");
    let migrations = get(&address, "/api/migrations");
    let listed: Vec<(&str, &str)> = migrations["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["latest"]["status"].as_str().unwrap()))
        .collect();
    // Every migration of the run, completed; a table read in key ranges is one per range.
    for table in ["customers", "orders", "catch-up pass"] {
        assert!(listed.iter().any(|(name, _)| name.contains(table)), "{table}: {migrations}");
    }
    assert!(listed.iter().all(|(_, status)| *status == "completed"), "{migrations}");
    let info = get(&address, "/api/info");
    assert!(info.to_string().contains("target"), "{info}");
    drop(server);
}

#[test]
fn serve_shows_the_runs_an_earlier_sync_process_recorded_in_sqlite() {
    let pair = common::SqlitePair::new();
    serve_shows_the_runs_of_an_earlier_sync(pair.path(), &pair.source_url(), &pair.target_url());
}

#[test]
fn serve_shows_the_runs_an_earlier_sync_process_recorded_in_postgresql() {
    let pair = common::PgPair::new("serve");
    serve_shows_the_runs_of_an_earlier_sync(pair.dir.path(), &pair.source, &pair.target);
}
