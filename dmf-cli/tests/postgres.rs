//! `dmf` on PostgreSQL: every subcommand, exit codes, JSON, config precedence (the same
//! scenarios as on SQLite, tests/common/scenarios.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;

use common::scenarios::{self, Pair};

struct Postgres(common::PgPair);

impl Pair for Postgres {
    fn source_url(&self) -> String {
        self.0.source.clone()
    }
    fn target_url(&self) -> String {
        self.0.target.clone()
    }
    fn dir(&self) -> &Path {
        self.0.dir.path()
    }
    fn table(&self, name: &str) -> String {
        format!("public.{name}")
    }
    fn target_execute(&self, sql: &str) {
        self.0.execute(&self.0.target, sql);
    }
    fn source_execute(&self, sql: &str) {
        self.0.execute(&self.0.source, sql);
    }
    fn target_count(&self, table: &str) -> i64 {
        self.0.count(table)
    }
}

#[test]
fn every_subcommand_with_its_exit_code_and_json() {
    scenarios::every_subcommand(&Postgres(common::PgPair::new("all")));
}

#[test]
fn a_failed_run_exits_3_and_names_its_reject() {
    let pair = Postgres(common::PgPair::new("fail"));
    pair.target_execute("ALTER TABLE customers ALTER COLUMN email SET NOT NULL");
    scenarios::a_failed_run_exits_3_and_names_its_reject(&pair);
}

#[test]
fn flags_over_environment_over_config_file() {
    scenarios::config_precedence(&Postgres(common::PgPair::new("config")));
}
