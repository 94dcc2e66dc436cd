//! Rule checks on a real PostgreSQL target whose rows were written with foreign-key checks
//! off (`session_replication_role = replica`, and a foreign key whose triggers stay
//! disabled): orphans of a plain, a composite and a self-referencing foreign key, NULLs where
//! the source says NOT NULL, duplicates where the source has a unique key, and rows breaking
//! the user's predicates are named with table, rule and key, and rows with a NULL in a foreign
//! key are no orphans. What every adapter shows (a clean target passes, a predicate the target
//! cannot run names its rule) is dmf-testkit's sync conformance suite, run in
//! `tests/sync_conformance.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;

use common::TestDb;
use dmf_core::quality::{Rule, RuleKind, check_rules, rule_checks, verify};
use dmf_core::sync::{Database, SyncMode, SyncPlan};
use dmf_postgres::PgDatabase;

/// What the source declares. The shipments' key is numeric (read as text, shown as a number).
const STRICT: &str = r#"
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id bigint PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL);
CREATE TABLE shop."Order" ("Id" integer PRIMARY KEY, customer_id bigint REFERENCES shop.customers (id), amount numeric(12,2));
CREATE TABLE shop.order_lines (
    order_id integer NOT NULL REFERENCES shop."Order" ("Id"),
    line smallint NOT NULL,
    qty integer NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE TABLE shop.shipments (
    code numeric(10,0) PRIMARY KEY,
    order_id integer,
    line smallint,
    CONSTRAINT shipments_line_fk FOREIGN KEY (order_id, line) REFERENCES shop.order_lines (order_id, line)
);
CREATE TABLE shop.employees (
    id integer PRIMARY KEY,
    name text NOT NULL,
    manager_id integer CONSTRAINT employees_manager_fk REFERENCES shop.employees (id)
);
"#;

/// Valid rows, with NULLs in foreign keys (order 3 has no customer, shipment 3 no line).
const CLEAN: &str = r#"
INSERT INTO shop.customers VALUES (1, 'a@example.com', 'Ann'), (2, 'b@example.com', 'Bob'), (3, 'c@example.com', 'Cy');
INSERT INTO shop."Order" VALUES (1, 1, 100), (2, 2, 50), (3, NULL, 10);
INSERT INTO shop.order_lines VALUES (1, 1, 2), (1, 2, 1), (2, 1, 5);
INSERT INTO shop.shipments VALUES (1, 1, 1), (2, 1, 2), (3, 2, NULL);
INSERT INTO shop.employees VALUES (1, 'Boss', NULL), (2, 'Dev', 1);
"#;

/// The target: customers' email and name nullable, email not unique.
const WEAKEN: &str = "
ALTER TABLE shop.customers ALTER COLUMN email DROP NOT NULL, ALTER COLUMN name DROP NOT NULL,
    DROP CONSTRAINT customers_email_key;
";

/// Rows breaking every rule, written without foreign-key checks; the employees' foreign key
/// stays disabled (not enforced: the catalog says so, and it is checked all the same).
const PLANTED: &str = r#"
SET session_replication_role = replica;
INSERT INTO shop.customers VALUES (4, 'a@example.com', NULL), (5, NULL, 'Eve'), (6, NULL, 'Fay');
INSERT INTO shop."Order" VALUES (4, 99, 20), (5, 2, -5), (6, 1, NULL);
INSERT INTO shop.order_lines VALUES (2, 2, 0);
INSERT INTO shop.shipments VALUES (4, 1, 9), (5, NULL, 9);
RESET session_replication_role;
ALTER TABLE shop.employees DISABLE TRIGGER ALL;
INSERT INTO shop.employees VALUES (3, 'Ghost', 77);
"#;

async fn database(label: &str, batches: &[&str]) -> (TestDb, std::sync::Arc<PgDatabase>) {
    let db = TestDb::create(label).await;
    let client = db.client().await;
    for batch in batches {
        client.batch_execute(batch).await.unwrap();
    }
    let database = db.database();
    (db, database)
}

fn rules() -> Vec<Rule> {
    vec!["shop.Order: check(amount >= 0)".parse().unwrap(), "order_lines: check(qty > 0)".parse().unwrap()]
}

async fn plan(source: &PgDatabase, target: &PgDatabase) -> SyncPlan {
    SyncPlan::build(&source.read_catalog().await.unwrap(), &target.read_catalog().await.unwrap(), None, SyncMode::Full)
        .unwrap()
}

const FK_ORDER: &str = "shop.Order: FK Order_customer_id_fkey (customer_id) → shop.customers (id)";
const FK_LINES: &str = "shop.order_lines: FK order_lines_order_id_fkey (order_id) → shop.Order (Id)";
const FK_SHIPMENTS: &str = "shop.shipments: FK shipments_line_fk (order_id, line) → shop.order_lines (order_id, line)";
const FK_EMPLOYEES: &str = "shop.employees: FK employees_manager_fk (manager_id) → shop.employees (id)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_violation_is_named_with_its_table_rule_and_key() {
    let (_source_db, source) = database("rules_src", &[STRICT, CLEAN]).await;
    let (target_db, target) = database("rules_dst", &[STRICT, CLEAN, WEAKEN, PLANTED]).await;
    // The foreign keys are real: with checks on, an orphan is refused.
    let refused = target_db.client().await.batch_execute(r#"INSERT INTO shop."Order" VALUES (7, 98, 1)"#).await;
    assert!(refused.is_err());

    let plan = plan(&source, &target).await;
    let employees = plan.tables.iter().find(|t| t.target.name.name == "employees").unwrap();
    assert!(!employees.target.foreign_keys[0].enforced, "its triggers are disabled");

    let checks = rule_checks(&plan, &rules()).unwrap();
    let reports = check_rules(target.as_ref(), &checks, 10).await.unwrap();
    let found: BTreeMap<&str, (u64, Vec<&str>)> = reports
        .iter()
        .map(|r| (r.rule.as_str(), (r.violations, r.sample.iter().map(String::as_str).collect())))
        .collect();
    let expected: BTreeMap<&str, (u64, Vec<&str>)> = [
        ("shop.customers: not null(email)", (2, vec!["id=5", "id=6"])),
        ("shop.customers: not null(name)", (1, vec!["id=4"])),
        // Two NULL emails are no duplicates; the two rows of the one duplicate both count.
        ("shop.customers: unique(email)", (2, vec!["id=1", "id=4"])),
        // Order 3 has no customer: no orphan.
        (FK_ORDER, (1, vec!["Id=4"])),
        (FK_LINES, (0, vec![])),
        // Order 1 has lines, but not line 9; shipment 5 has a NULL order: no orphan.
        (FK_SHIPMENTS, (1, vec!["code=4"])),
        (FK_EMPLOYEES, (1, vec!["id=3"])),
        // A NULL amount is not TRUE: it breaks the predicate.
        ("shop.Order: check(amount >= 0)", (2, vec!["Id=5", "Id=6"])),
        ("shop.order_lines: check(qty > 0)", (1, vec!["(order_id=2, line=2)"])),
    ]
    .into_iter()
    .collect();
    assert_eq!(found, expected);
    let shipments = reports.iter().find(|r| r.rule == FK_SHIPMENTS).unwrap();
    assert_eq!((shipments.table.as_str(), shipments.kind), ("shop.shipments", RuleKind::ForeignKey));

    // The sample is bounded and in key order; the count is not.
    let one = check_rules(target.as_ref(), &checks, 1).await.unwrap();
    let nulls = one.iter().find(|r| r.rule == "shop.customers: not null(email)").unwrap();
    assert_eq!((nulls.violations, nulls.sample.clone()), (2, vec!["id=5".to_owned()]));

    let report = verify(source.as_ref(), target.as_ref(), &plan, &rules(), 10).await.unwrap();
    assert!(!report.passed());
    assert_eq!(report.rules, reports);
    assert!(report.to_string().contains("VIOLATED\n    code=4\n"), "{report}");
}
