//! `quality::verify` on PostgreSQL: equal after a sync; a changed value, a missing row and an
//! extra row planted in the target are each named with table and key; a JSON report round-trips.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use dmf_core::quality::{DifferenceKind, QualityReport};
use dmf_core::sync::{SyncJob, SyncMode};
use dmf_core::{EngineConfig, RunRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_a_changed_value_a_missing_row_and_an_extra_row() {
    let (source, target) = rich_pair("verify").await;
    let job = SyncJob::new(source.database(), target.database(), SyncMode::Full)
        .engine(EngineConfig::builder().batch_size(500).build().unwrap());
    assert!(job.run(RunRequest::all().force()).await.unwrap().succeeded());
    let plan = job.plan().await.unwrap();
    let verify = || async {
        dmf_core::quality::verify(source.database().as_ref(), target.database().as_ref(), &plan, &[], 10).await.unwrap()
    };
    let report = verify().await;
    assert!(report.passed(), "{report}");

    target
        .client()
        .await
        .batch_execute(
            "SET session_replication_role = replica;
             UPDATE shop.customers SET balance = balance + 0.0000000001 WHERE id = 17;
             DELETE FROM shop.order_lines WHERE order_id = 20 AND line = 2;
             INSERT INTO public.\"odd \"\"quoted\"\" table\" VALUES ('stray', 'x', NULL);",
        )
        .await
        .unwrap();
    let report = verify().await;
    assert!(!report.is_equal());
    let table = |name: &str| report.tables.iter().find(|r| r.table == name).unwrap_or_else(|| panic!("{name}"));
    let customers = table("shop.customers");
    assert_eq!((customers.changed, customers.missing_in_target, customers.extra_in_target), (1, 0, 0));
    assert_eq!(customers.sample[0].key, "id=17");
    assert!(customers.sample[0].columns[0].starts_with("balance: "), "{report}");
    let lines = table("shop.order_lines");
    assert_eq!(lines.missing_in_target, 1);
    assert_eq!(lines.sample[0].kind, DifferenceKind::MissingInTarget);
    assert_eq!(lines.sample[0].key, "(order_id=20, line=2)");
    let odd = table("public.odd \"quoted\" table");
    assert_eq!(odd.extra_in_target, 1);
    assert_eq!(odd.sample[0].key, r#"key "k"="stray""#, "text keys are quoted");
    assert_eq!(report.tables.iter().filter(|r| !r.is_equal()).count(), 3, "{report}");
    let json = serde_json::to_string(&report).unwrap();
    assert_eq!(serde_json::from_str::<QualityReport>(&json).unwrap(), report);
}
