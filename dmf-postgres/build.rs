//! Tells the TLS tests (`tests/tls.rs`) whether they have a PostgreSQL server with TLS on, so
//! that without one they are reported by the test runner as ignored with their reason
//! instead of `ok`.
//!
//! `cfg(dmf_test_pg_tls)` when `DMF_TEST_PG_TLS_URL` (a superuser who may log in over TLS
//! only) and `DMF_TEST_PG_TLS_DIR` (the certificates of `scripts/test-certs.sh`) are set, as
//! `scripts/pg-cluster.sh` sets them. The library itself does not look at them.

fn main() {
    println!("cargo::rerun-if-env-changed=DMF_TEST_PG_TLS_URL");
    println!("cargo::rerun-if-env-changed=DMF_TEST_PG_TLS_DIR");
    println!("cargo::rustc-check-cfg=cfg(dmf_test_pg_tls)");
    let set = |name: &str| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
    if set("DMF_TEST_PG_TLS_URL") && set("DMF_TEST_PG_TLS_DIR") {
        println!("cargo::rustc-cfg=dmf_test_pg_tls");
    }
}
