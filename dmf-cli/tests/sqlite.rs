//! `dmf` on SQLite files: every subcommand, exit codes, JSON, config precedence.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;

use common::scenarios::{self, Pair};

struct Sqlite(common::SqlitePair);

impl Pair for Sqlite {
    fn source_url(&self) -> String {
        self.0.source_url()
    }
    fn target_url(&self) -> String {
        self.0.target_url()
    }
    fn dir(&self) -> &Path {
        self.0.path()
    }
    fn table(&self, name: &str) -> String {
        name.to_owned()
    }
    fn target_execute(&self, sql: &str) {
        self.0.target_db().execute_batch(sql).unwrap();
    }
    fn source_execute(&self, sql: &str) {
        rusqlite::Connection::open(&self.0.source).unwrap().execute_batch(sql).unwrap();
    }
    fn target_count(&self, table: &str) -> i64 {
        self.0.count(table)
    }
}

#[test]
fn every_subcommand_with_its_exit_code_and_json() {
    scenarios::every_subcommand(&Sqlite(common::SqlitePair::new()));
}

#[test]
fn a_failed_run_exits_3_and_names_its_reject() {
    let pair = Sqlite(common::SqlitePair::new());
    // The target refuses customers without an email.
    pair.target_execute(
        "DROP TABLE orders; DROP TABLE customers;
         CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id),
                              total REAL NOT NULL);",
    );
    scenarios::a_failed_run_exits_3_and_names_its_reject(&pair);
}

#[test]
fn flags_over_environment_over_config_file() {
    scenarios::config_precedence(&Sqlite(common::SqlitePair::new()));
}
