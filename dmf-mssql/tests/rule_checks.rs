//! `find_violations` on SQL Server (scripted): dmf-core's rule checks in T-SQL, inside a
//! transaction that is rolled back: one `COUNT_BIG(*)` and, only when rows break the rule, one
//! page of their keys (`FETCH NEXT @P1 ROWS ONLY`), bound, decoded and formatted as the quality
//! report shows keys; a failing statement names the rule; a predicate that could end its
//! statement is refused before anything is sent.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use dmf_core::catalog::{ForeignKey, TableName};
use dmf_core::quality::{RuleCheck, Violations, check_rules};
use dmf_core::sync::Database;
use dmf_core::{ErrorKind, Value};
use dmf_mssql::executor::{RecordedKind, Response};
use dmf_mssql::{MssqlOptions, SqlError};

fn composite_fk() -> RuleCheck {
    RuleCheck::ForeignKey {
        table: TableName::new(Some("dbo"), "Shipments"),
        key: vec!["order_id".into(), "line".into()],
        foreign_key: ForeignKey {
            name: "FK_Shipments_Lines".into(),
            columns: vec!["order_id".into(), "line".into()],
            referenced_table: TableName::new(Some("dbo"), "Order Lines"),
            referenced_columns: vec!["order_id".into(), "line".into()],
            enforced: false,
        },
    }
}

const VIOLATING: &str = "FROM [dbo].[Shipments] AS c WHERE c.[order_id] IS NOT NULL AND c.[line] IS NOT NULL \
AND NOT EXISTS (SELECT 1 FROM [dbo].[Order Lines] AS p WHERE p.[order_id] = c.[order_id] AND p.[line] = c.[line])";

#[tokio::test]
async fn orphans_are_counted_and_a_bounded_page_of_their_keys_read() {
    let (script, db) = scripted(MssqlOptions::default());
    script.on("SELECT COUNT_BIG(*)", Response::rows(vec![vec![big(3)]]));
    script.on("FETCH NEXT @P1 ROWS ONLY", Response::rows(vec![vec![int(1), int(9)], vec![int(4), int(2)]]));

    let found = db.find_violations(&composite_fk(), 2).await.unwrap();
    assert_eq!(
        found,
        Violations { count: 3, sample: vec!["(order_id=1, line=9)".into(), "(order_id=4, line=2)".into()] }
    );
    let queries: Vec<_> = script.log().into_iter().filter(|r| r.kind == RecordedKind::Query).collect();
    assert_eq!(queries.len(), 2);
    assert_eq!(
        (queries[0].sql.clone(), queries[0].params.clone()),
        (format!("SELECT COUNT_BIG(*) {VIOLATING}"), vec![])
    );
    assert_eq!(
        (queries[1].sql.clone(), queries[1].params.clone()),
        (
            format!(
                "SELECT c.[order_id], c.[line] {VIOLATING} ORDER BY c.[order_id], c.[line] OFFSET 0 ROWS FETCH NEXT @P1 \
                 ROWS ONLY"
            ),
            vec![Value::Int(2)]
        )
    );
}

#[tokio::test]
async fn no_violation_reads_no_keys() {
    let (script, db) = scripted(MssqlOptions::default());
    script.on("SELECT COUNT_BIG(*)", Response::rows(vec![vec![big(0)]]));
    let reports = check_rules(db.as_ref(), &[composite_fk()], 10).await.unwrap();
    assert_eq!(reports[0].violations, 0);
    assert!(reports[0].passed());
    assert_eq!(
        reports[0].rule,
        "dbo.Shipments: FK FK_Shipments_Lines (order_id, line) → dbo.Order Lines (order_id, line)"
    );
    assert!(!script.statements().iter().any(|s| s.contains("FETCH NEXT")), "{:?}", script.statements());
}

#[tokio::test]
async fn a_predicate_the_server_refuses_fails_naming_the_rule() {
    let (script, db) = scripted(MssqlOptions::default());
    script.on("SELECT COUNT_BIG(*)", Response::Fail(SqlError::server(207, "Invalid column name 'amout'.")));
    let check = RuleCheck::Predicate {
        table: TableName::new(Some("dbo"), "Orders"),
        key: vec!["id".into()],
        sql: "amout >= 0".into(),
    };
    let error = db.find_violations(&check, 10).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fatal);
    let text = error.chain();
    assert!(text.contains("checking `dbo.Orders: check(amout >= 0)` on sa@test:1433/Sales"), "{text}");
    assert!(text.contains("Invalid column name 'amout'"), "{text}");
    assert_eq!(
        script.statements(),
        [
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN TRANSACTION;",
            "SELECT COUNT_BIG(*) FROM [dbo].[Orders] WHERE CASE WHEN (amout >= 0) THEN 1 ELSE 0 END = 0",
            "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;",
        ],
        "in a transaction, rolled back even when the query failed"
    );
}

#[tokio::test]
async fn a_predicate_that_could_end_its_statement_is_refused_before_anything_is_sent() {
    let (script, db) = scripted(MssqlOptions::default());
    // T-SQL needs no `;` between statements: closing the CASE's parenthesis would be enough.
    let check = RuleCheck::Predicate {
        table: TableName::new(Some("dbo"), "Orders"),
        key: vec!["id".into()],
        sql: "1 = 1) THEN 1 ELSE 0 END = 0 DELETE FROM dbo.Orders SELECT 1 WHERE (1 = 1".into(),
    };
    let error = db.find_violations(&check, 10).await.unwrap_err();
    assert!(error.chain().contains("the predicate must be one SQL expression"), "{}", error.chain());
    assert!(script.statements().is_empty(), "{:?}", script.statements());
}
