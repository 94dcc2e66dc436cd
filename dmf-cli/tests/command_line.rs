//! The parser, without a database: help, version, typos, conflicting and repeated flags,
//! completions, and errors in where settings come from (exit 2, naming what is wrong).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use predicates::prelude::*;

#[test]
fn help_lists_every_subcommand_and_the_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let output = common::dmf(dir.path()).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for subcommand in ["sync", "verify", "plan", "check", "rollback", "runs", "serve", "completions"] {
        assert!(help.contains(&format!("  {subcommand}")), "{subcommand} missing from:\n{help}");
    }
    for code in ["0  success", "1  the target differs", "2  usage or configuration error", "3  the run failed"] {
        assert!(help.contains(code), "`{code}` missing from:\n{help}");
    }
    assert!(help.contains("DMF_SOURCE_URL") && help.contains("PGPASSWORD"), "{help}");
    // Every subcommand has its own help.
    for subcommand in ["sync", "verify", "plan", "check", "rollback", "runs", "serve"] {
        common::dmf(dir.path())
            .args([subcommand, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Usage: dmf"));
    }
    common::dmf(dir.path())
        .args(["sync", "--help"])
        .assert()
        .stdout(predicate::str::contains("--skip-target-triggers"));
}

#[test]
fn version_names_the_package_version() {
    let dir = tempfile::tempdir().unwrap();
    common::dmf(dir.path()).arg("--version").assert().success().stdout(format!("dmf {}\n", env!("CARGO_PKG_VERSION")));
    common::dmf(dir.path()).args(["sync", "--version"]).assert().success();
}

#[test]
fn a_typo_is_refused_with_a_suggestion_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    common::dmf(dir.path())
        .args(["sync", "--sorce", "sqlite://a.db"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unexpected argument '--sorce'").and(predicate::str::contains("--source")));
    common::dmf(dir.path()).arg("snyc").assert().code(2).stderr(predicate::str::contains("sync"));
}

#[test]
fn a_mistyped_flag_holding_a_password_is_shown_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = common::dmf(dir.path()).args(["sync", "--sorce=postgres://u:S3cret@h/db"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    // clap quotes the argument it does not know; the password must not be in it.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("S3cret"), "{stderr}");
    // A URL without its flag is quoted whole by the parser: masked.
    let output = common::dmf(dir.path()).args(["sync", "postgres://u:S3cret@h/db"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unexpected argument 'postgres://u:***@h/db'"), "{stderr}");
    let output = common::dmf(dir.path()).args(["sync", "Server=h;User Id=sa;Password=S3cret;"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&output.stderr).contains("S3cret"));
}

#[test]
fn conflicting_and_repeated_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for conflict in [
        &["sync", "--dry-run", "--restart"][..],
        &["sync", "--dry-run", "--backup", "/tmp/x"],
        &["sync", "--no-verify", "--report-json", "r.json"],
        &["sync", "--no-verify", "--rule", "t: unique(a)"],
    ] {
        common::dmf(dir.path()).args(conflict).assert().code(2).stderr(predicate::str::contains("cannot be used with"));
    }
    common::dmf(dir.path())
        .args(["sync", "--batch-size", "10", "--batch-size", "20"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot be used multiple times"));
    common::dmf(dir.path()).args(["sync", "--batch-size", "0"]).assert().code(2);
    common::dmf(dir.path())
        .args(["sync", "--fk-checks", "never"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("per-row"));
    common::dmf(dir.path())
        .args(["rollback", "yesterday"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("`last` or a run id"));
}

#[test]
fn completions_are_printed_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        common::dmf(dir.path()).args(["completions", shell]).assert().success().stdout(predicate::str::contains("dmf"));
    }
}

#[test]
fn a_missing_connection_names_the_three_places_it_can_come_from() {
    let dir = tempfile::tempdir().unwrap();
    common::dmf(dir.path()).args(["verify", "--target", "sqlite://x.db"]).assert().code(2).stderr(
        predicate::str::contains("no source database: give --source URL, set DMF_SOURCE_URL, or write `source"),
    );
    let output = common::dmf(dir.path()).args(["--json", "runs"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let document = common::document(&output);
    assert_eq!(document["exit_code"], 2);
    assert!(document["error"].as_str().unwrap().contains("no target database"), "{document}");
}

#[test]
fn a_bad_config_file_is_a_usage_error_naming_the_key_or_variable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dmf.toml"), "batchsize = 10\n").unwrap();
    common::dmf(dir.path())
        .args(["runs"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown field `batchsize`"));
    std::fs::write(dir.path().join("other.toml"), "target = \"${DMF_TEST_UNSET_VARIABLE}\"\n").unwrap();
    common::dmf(dir.path())
        .args(["--config", "other.toml", "runs"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("key `target`: the environment variable DMF_TEST_UNSET_VARIABLE is not set"));
    std::fs::write(dir.path().join("other.toml"), "mode = \"${DMF_TEST_UNSET_VARIABLE}\"\n").unwrap();
    common::dmf(dir.path())
        .args(["--config", "other.toml", "runs", "--target", "sqlite://x.db"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("key `mode`: the environment variable DMF_TEST_UNSET_VARIABLE is not set"));
    common::dmf(dir.path())
        .args(["--config", "missing.toml", "runs"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read the config file missing.toml"));
}

#[test]
fn an_unknown_url_scheme_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    common::dmf(dir.path()).args(["runs", "--target", "postgress://u:S3cret@h/db"]).assert().code(2).stderr(
        predicate::str::contains("unsupported URL scheme `postgress`").and(predicate::str::contains("S3cret").not()),
    );
}
