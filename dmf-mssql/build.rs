//! Tells the live tests (`tests/live_*.rs`) which TDS server they have, so that a test that
//! cannot run is reported by the test runner as ignored with its reason instead of `ok`.
//!
//! `cfg(dmf_mssql_server = "none" | "babelfish" | "sqlserver")`: `none` without
//! `DMF_TEST_MSSQL_URL`; otherwise `DMF_TEST_MSSQL_SERVER` (`babelfish`, or `sqlserver`, the
//! default). The library itself does not look at it.
//!
//! `cfg(dmf_test_pg)` when `DMF_TEST_PG_URL` names a PostgreSQL server, for the live test that
//! syncs SQLite into the TDS server and on into PostgreSQL; `cfg(dmf_bin)` when
//! `DMF_BIN` names the `dmf` command (dmf-cli), for the test that runs it;
//! `cfg(dmf_mssql_tls_ca)` when `DMF_TEST_MSSQL_TLS_CA` names the TDS server's certificate.

fn main() {
    println!("cargo::rerun-if-env-changed=DMF_TEST_MSSQL_URL");
    println!("cargo::rerun-if-env-changed=DMF_TEST_MSSQL_SERVER");
    println!("cargo::rerun-if-env-changed=DMF_TEST_PG_URL");
    println!("cargo::rustc-check-cfg=cfg(dmf_test_pg)");
    if std::env::var("DMF_TEST_PG_URL").is_ok_and(|url| !url.trim().is_empty()) {
        println!("cargo::rustc-cfg=dmf_test_pg");
    }
    println!("cargo::rerun-if-env-changed=DMF_BIN");
    println!("cargo::rustc-check-cfg=cfg(dmf_bin)");
    if std::env::var("DMF_BIN").is_ok_and(|path| !path.trim().is_empty()) {
        println!("cargo::rustc-cfg=dmf_bin");
    }
    println!("cargo::rerun-if-env-changed=DMF_TEST_MSSQL_TLS_CA");
    println!("cargo::rustc-check-cfg=cfg(dmf_mssql_tls_ca)");
    if std::env::var("DMF_TEST_MSSQL_TLS_CA").is_ok_and(|path| !path.trim().is_empty()) {
        println!("cargo::rustc-cfg=dmf_mssql_tls_ca");
    }
    println!("cargo::rustc-check-cfg=cfg(dmf_mssql_server, values(\"none\", \"babelfish\", \"sqlserver\"))");
    let has_url = std::env::var("DMF_TEST_MSSQL_URL").is_ok_and(|url| !url.trim().is_empty());
    let server = match std::env::var("DMF_TEST_MSSQL_SERVER").unwrap_or_default().trim() {
        _ if !has_url => "none",
        "" | "sqlserver" => "sqlserver",
        "babelfish" => "babelfish",
        other => {
            println!("cargo::error=DMF_TEST_MSSQL_SERVER is `{other}`: expected `sqlserver` or `babelfish`");
            "none"
        }
    };
    println!("cargo::rustc-cfg=dmf_mssql_server=\"{server}\"");
}
