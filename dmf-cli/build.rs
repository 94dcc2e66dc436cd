//! Tells the secrets test (`tests/no_secret_anywhere.rs`) whether it has a PostgreSQL role
//! that logs in by password (over TLS), so that without one it is reported as ignored with its
//! reason instead of `ok`.
//!
//! `cfg(dmf_test_pg_tls)` when `DMF_TEST_PG_TLS_URL` (user `dmf_tls`, SCRAM over TLS only)
//! is set, as `scripts/pg-cluster.sh` sets it. The binary itself does not look at it.

fn main() {
    println!("cargo::rerun-if-env-changed=DMF_TEST_PG_TLS_URL");
    println!("cargo::rustc-check-cfg=cfg(dmf_test_pg_tls)");
    if std::env::var("DMF_TEST_PG_TLS_URL").is_ok_and(|value| !value.trim().is_empty()) {
        println!("cargo::rustc-cfg=dmf_test_pg_tls");
    }
}
