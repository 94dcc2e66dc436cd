//! The CLI's behaviour, written once and run against each kind of database (tests/sqlite.rs,
//! tests/postgres.rs): every subcommand, `--json` parsed back, each exit code, config
//! precedence, and verification that never says "equal" of a table it did not compare.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

use super::{both, dmf, document};

/// Two databases of the shop schema (customers, orders, a keyless audit_log): a source with
/// 30 customers and 60 orders, an empty target.
pub trait Pair {
    fn source_url(&self) -> String;
    fn target_url(&self) -> String;
    fn dir(&self) -> &Path;
    /// A table's name as `dmf` shows it (`customers`, `public.customers`).
    fn table(&self, name: &str) -> String;
    /// Runs SQL on the target.
    fn target_execute(&self, sql: &str);
    /// Runs SQL on the source.
    fn source_execute(&self, sql: &str);
    /// Rows of a target table.
    fn target_count(&self, table: &str) -> i64;

    /// `dmf [--json] SUBCOMMAND --source … --target …` in the pair's directory.
    fn dmf(&self, subcommand: &str, json: bool) -> Command {
        let mut command = dmf(self.dir());
        if json {
            command.arg("--json");
        }
        command.args([subcommand, "--source", &self.source_url(), "--target", &self.target_url()]);
        command
    }
}

/// Runs `command`, checks its exit code, and returns its JSON document.
pub fn run_json(command: &mut Command, code: i32) -> (Value, std::process::Output) {
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(code), "exit code\n{}", both(&output));
    (document(&output), output)
}

/// check, plan, sync, runs, runs show, verify (equal, keyless table, changed row, missing
/// table), rollback: exit codes and JSON documents.
pub fn every_subcommand(pair: &impl Pair) {
    let customers = pair.table("customers");
    let orders = pair.table("orders");
    let audit = pair.table("audit_log");

    // A usage error against this kind of database: 2, the pattern named, nothing done.
    let (error, _) = run_json(pair.dmf("plan", true).args(["--tables", "cutsomers"]), 2);
    assert!(
        error["error"].as_str().unwrap().contains("`--tables cutsomers` matches no table of the source"),
        "{error}"
    );
    let (error, _) = run_json(pair.dmf("sync", true).args(["--mode", "incremental:no_such_column"]), 2);
    assert!(error["error"].as_str().unwrap().contains("no_such_column"), "{error}");
    assert_eq!(pair.target_count("customers"), 0);

    // check: pre-flight only; the keyless table is a warning, not a failure.
    let (check, _) = run_json(&mut pair.dmf("check", true), 0);
    assert_eq!(check["command"], "check");
    assert_eq!(check["passed"], true, "{check}");
    assert!(check["preflight"]["outcomes"].as_array().unwrap().len() >= 4, "{check}");

    // plan: load order, what would be written, nothing written.
    let (plan, _) = run_json(pair.dmf("plan", true).args(["--exclude", "audit_*"]), 0);
    let planned: Vec<&str> = plan["tables"].as_array().unwrap().iter().map(|t| t["table"].as_str().unwrap()).collect();
    assert_eq!(planned, [customers.as_str(), orders.as_str()], "{plan}");
    assert_eq!(plan["mode"], "upsert");
    let inserts: u64 =
        plan["steps"].as_array().unwrap().iter().map(|s| s["counts"]["inserted"].as_u64().unwrap()).sum();
    assert_eq!(inserts, 90, "{plan}");
    assert_eq!(pair.target_count("customers"), 0, "plan wrote nothing");

    // sync: people's output on stderr under --json, one document on stdout.
    let (sync, output) =
        run_json(pair.dmf("sync", true).args(["--exclude", "audit_*"]).env("HOSTNAME", "not-this-host"), 0);
    assert_eq!(sync["command"], "sync");
    assert_eq!(sync["run"]["status"], "completed", "{sync}");
    assert_eq!(sync["run"]["totals"]["inserted"], 90, "{sync}");
    assert_eq!(sync["verification"]["passed"], true, "{sync}");
    assert_eq!(sync["exit_code"], 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pre-flight:") && stderr.contains("the target equals the source"), "{stderr}");
    // Durations and statuses for people, not Debug.
    assert!(!stderr.contains("Completed") && !stderr.contains("µs\n") && !stderr.contains("ms)"), "{stderr}");
    assert_eq!(pair.target_count("orders"), 60);
    let run = sync["run"]["run"].as_i64().unwrap();

    // runs: the record, its host the machine's name (not $HOSTNAME).
    let (runs, _) = run_json(dmf(pair.dir()).args(["--json", "runs", "--target", &pair.target_url()]), 0);
    assert_eq!(runs["runs"][0]["run"], run, "{runs}");
    assert_eq!(runs["runs"][0]["status"], "completed");
    assert_eq!(runs["runs"][0]["totals"]["inserted"], 90);
    let host = runs["runs"][0]["host"].as_str().unwrap();
    assert!(!host.is_empty() && host != "not-this-host", "{runs}");
    let (show, _) =
        run_json(dmf(pair.dir()).args(["--json", "runs", "--target", &pair.target_url(), "show", "last"]), 0);
    assert_eq!(show["run"]["run"], run);
    let tables: Vec<&str> =
        show["run"]["tables"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    // A table read in key ranges is one migration per range (`public.orders [range 1/2]`).
    for table in [&customers, &orders] {
        assert!(tables.iter().any(|t| t.starts_with(table.as_str())), "{table}: {show}");
    }
    dmf(pair.dir()).args(["runs", "--target", &pair.target_url(), "show", "999"]).assert().code(2);
    let listed = dmf(pair.dir()).args(["runs", "--target", &pair.target_url()]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("completed") && listed.contains(host), "{listed}");

    // verify: equal with the keyless table excluded on purpose…
    let (verify, _) = run_json(pair.dmf("verify", true).args(["--exclude", "audit_log"]), 0);
    assert_eq!(verify["passed"], true, "{verify}");
    // …and not "equal" when it is part of the selection: it could not be compared.
    let (verify, output) = run_json(&mut pair.dmf("verify", true), 1);
    assert_eq!(verify["unverified_tables"], serde_json::json!([audit]), "{verify}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("NOT VERIFIED"), "{}", both(&output));

    // A changed target: 1 (rows differ), with the table's counts in the report.
    pair.target_execute("DELETE FROM orders WHERE id = 7");
    let (verify, _) = run_json(pair.dmf("verify", true).args(["--tables", "customers,orders"]), 1);
    let orders_report =
        verify["report"]["tables"].as_array().unwrap().iter().find(|t| t["table"] == orders.as_str()).unwrap();
    assert_eq!(orders_report["missing_in_target"], 1, "{verify}");
    // Without --json, the verdict on stdout.
    pair.dmf("verify", false)
        .args(["--tables", "orders"])
        .assert()
        .code(1)
        .stdout(predicates::str::contains("DIFFERS"));

    // sync again (upsert) puts the row back; rollback of that run takes it away again.
    let (sync, _) = run_json(pair.dmf("sync", true).args(["--tables", "customers,orders"]), 0);
    assert_eq!(sync["run"]["totals"]["inserted"], 1, "{sync}");
    assert_eq!(pair.target_count("orders"), 60);
    let (rollback, _) =
        run_json(dmf(pair.dir()).args(["--json", "rollback", "last", "--target", &pair.target_url()]), 0);
    assert_eq!(rollback["run"]["run"], sync["run"]["run"], "{rollback}");
    assert_eq!(rollback["run"]["status"], "rolled back", "{rollback}");
    assert_eq!(pair.target_count("orders"), 59, "the rollback deleted the row the run inserted");

    // A table of the selection the target lacks: 1, the table named.
    pair.target_execute("DROP TABLE orders");
    let (verify, output) = run_json(pair.dmf("verify", true).args(["--exclude", "audit_log"]), 1);
    assert_eq!(verify["missing_tables"], serde_json::json!([orders]), "{verify}");
    assert_eq!(verify["passed"], false);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("the target DIFFERS from the source: it lacks {orders}")), "{stderr}");
}

/// A run that fails (a row the target refuses, no rejects allowed) exits 3 and is resumable;
/// its rejects are shown by `dmf runs show`; allowing rejects, the rerun succeeds and the
/// verification explains the difference by the rejected row.
pub fn a_failed_run_exits_3_and_names_its_reject(pair: &impl Pair) {
    pair.source_execute("UPDATE customers SET email = NULL WHERE id = 13");
    let (sync, output) = run_json(pair.dmf("sync", true).args(["--tables", "customers", "--batch-size", "8"]), 3);
    assert_eq!(sync["run"]["status"], "failed", "{sync}");
    assert_eq!(sync["exit_code"], 3);
    assert!(String::from_utf8_lossy(&output.stderr).contains("dmf sync` again"), "{}", both(&output));
    let (show, _) =
        run_json(dmf(pair.dir()).args(["--json", "runs", "show", "last", "--target", &pair.target_url()]), 0);
    let rejects = show["rejects"].as_array().unwrap();
    assert_eq!(rejects.len(), 1, "{show}");
    assert_eq!(rejects[0]["key"].as_str().unwrap(), "id=13", "{show}");
    assert!(rejects[0]["reason"].as_str().unwrap().to_lowercase().contains("email"), "{show}");

    // Started over with one reject allowed: the row is rejected again in this run, and the
    // verification explains the difference by it. (Resumed instead, the run would not read the
    // row again where a loader isolated it inside its committed batch: its reject is in the
    // failed run's quarantine, and this run's verification calls the table DIFFERENT.)
    let (sync, _) =
        run_json(pair.dmf("sync", true).args(["--tables", "customers", "--max-rejects", "1", "--restart"]), 0);
    assert_eq!(sync["run"]["status"], "completed", "{sync}");
    assert_eq!(sync["run"]["totals"]["rejected"], 1, "{sync}");
    assert_eq!(pair.target_count("customers"), 29);
}

/// Flags over environment over file, for the connections and the mode; `${VAR}` in the file.
pub fn config_precedence(pair: &impl Pair) {
    let file = pair.dir().join("dmf.toml");
    std::fs::write(
        &file,
        "source = \"${DMF_TEST_SOURCE}\"\ntarget = \"${DMF_TEST_TARGET}\"\nmode = \"full\"\nexclude = [\"audit_*\"]\n",
    )
    .unwrap();
    let plan = |mode_env: Option<&str>, mode_flag: Option<&str>| {
        let mut command = dmf(pair.dir());
        command
            .args(["--json", "plan", "--no-counts"])
            .env("DMF_TEST_SOURCE", pair.source_url())
            .env("DMF_TEST_TARGET", pair.target_url());
        if let Some(mode) = mode_env {
            command.env("DMF_MODE", mode);
        }
        if let Some(mode) = mode_flag {
            command.args(["--mode", mode]);
        }
        run_json(&mut command, 0).0
    };
    let from_file = plan(None, None);
    assert_eq!(from_file["mode"], "full", "{from_file}");
    assert_eq!(from_file["tables"].as_array().unwrap().len(), 2, "the file's exclude applies: {from_file}");
    assert_eq!(plan(Some("diff"), None)["mode"], "diff", "environment over file");
    assert_eq!(plan(Some("diff"), Some("upsert"))["mode"], "upsert", "flag over environment");

    // The environment's URL over the file's, the flag's over the environment's.
    let wrong = "sqlite:///nonexistent/dir/none.db";
    let mut command = dmf(pair.dir());
    command
        .args(["--json", "check"])
        .env("DMF_TEST_SOURCE", wrong)
        .env("DMF_TEST_TARGET", pair.target_url())
        .env("DMF_SOURCE_URL", pair.source_url());
    assert_eq!(run_json(&mut command, 0).0["passed"], true);
    let mut command = dmf(pair.dir());
    command
        .args(["--json", "check", "--source", &pair.source_url()])
        .env("DMF_TEST_SOURCE", wrong)
        .env("DMF_TEST_TARGET", pair.target_url())
        .env("DMF_SOURCE_URL", wrong);
    assert_eq!(run_json(&mut command, 0).0["passed"], true);
    std::fs::remove_file(file).unwrap();
}
