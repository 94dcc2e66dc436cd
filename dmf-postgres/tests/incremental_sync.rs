//! `incremental` mode by an `updated_at` column with delete propagation: a first run loads
//! everything (rows without a watermark included), a later run reads only rows whose
//! watermark grew, and propagates deletes; the target ends equal to the source.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::RunStatus;
use dmf_core::sync::SyncMode;

/// Changes that move the watermark, as an application would make them.
const CHANGES: &str = r#"
UPDATE shop.customers SET name = name || ' (renamed)', updated_at = timestamptz '2030-01-01 00:00:00+00' + id * interval '1 second'
WHERE id % 100 = 1;
INSERT INTO shop.customers (email, name, created_at, updated_at, external_id, referred_by)
SELECT 'late' || g || '@example.com', 'Late ' || g, timestamp '2030-01-01', timestamptz '2030-02-01 00:00:00+00',
       md5('late' || g)::uuid, CASE WHEN g <= 4 THEN 1 END
FROM generate_series(1, 10) g;
UPDATE shop."Order" SET "Total" = coalesce("Total", 0) + 1, updated_at = timestamptz '2030-01-01 00:00:00+00' WHERE "Id" % 100 = 2;
DELETE FROM shop.order_lines WHERE order_id > 2990;
DELETE FROM shop."Order" WHERE "Id" > 2990;
INSERT INTO shop."Order" ("Id", "select", "user", "Total", updated_at)
SELECT g, 'new', 1, 1.00, timestamptz '2030-01-01 00:00:00+00' FROM generate_series(3001, 3010) g;
INSERT INTO shop.order_lines (order_id, line, sku, quantity, price, updated_at)
SELECT g, 1, 'NEW', 1, 1.00, timestamptz '2030-01-01 00:00:00+00' FROM generate_series(3001, 3010) g;
UPDATE public."odd ""quoted"" table" SET "Value" = 'changed', updated_at = timestamptz '2030-01-01 00:00:00+00'
WHERE "key ""k""" IN ('é2', '🦀3');
DELETE FROM public."odd ""quoted"" table" WHERE "key ""k""" IN ('a4', 'B5');
INSERT INTO public."odd ""quoted"" table" VALUES ('Zebra', 'new', timestamptz '2030-01-01 00:00:00+00');
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incremental_reads_only_rows_whose_watermark_grew_and_propagates_deletes() {
    let (source_db, target_db) = common::rich_pair("incr").await;
    let (source, target) = (source_db.database(), target_db.database());
    let source_client = source_db.client().await;
    let target_client = target_db.client().await;
    let mode = SyncMode::Incremental { column: "updated_at".into(), propagate_deletes: true };

    let first = common::sync(&source, &target, mode.clone(), false).await;
    assert_eq!(first.status, RunStatus::Completed, "{first}");
    assert_eq!(common::fingerprints(&target_client).await, common::fingerprints(&source_client).await);
    // The odd table's watermark is nullable: its 20 rows without one were read too.
    assert_eq!(common::counts(&first, "public.odd \"quoted\" table"), (200, 200, 0, 0, 0));

    source_client.batch_execute(CHANGES).await.unwrap();
    // Completed migrations run again only when forced; incremental ones keep their watermark.
    let second = common::sync(&source, &target, mode, true).await;
    assert_eq!(second.status, RunStatus::Completed, "{second}");
    assert_eq!(common::fingerprints(&target_client).await, common::fingerprints(&source_client).await);

    assert_eq!(common::counts(&second, "shop.customers"), (40, 10, 30, 0, 0));
    assert_eq!(common::counts(&second, "shop.Order"), (40, 10, 30, 0, 0));
    assert_eq!(common::counts(&second, "shop.order_lines"), (10, 10, 0, 0, 0));
    assert_eq!(common::counts(&second, "public.odd \"quoted\" table"), (3, 1, 2, 0, 0));
    assert_eq!(common::counts(&second, "shop.departments"), (0, 0, 0, 0, 0));
    assert_eq!(common::counts(&second, "shop.employees"), (0, 0, 0, 0, 0));
    // The deferred-key pass also reads by watermark: the 40 changed customers, 4 of them new
    // with a referrer.
    assert_eq!(common::counts(&second, "shop.customers (deferred keys)"), (40, 0, 4, 36, 0));
    assert_eq!(common::counts(&second, "shop.order_lines (deletes)"), (20, 0, 0, 0, 20));
    assert_eq!(common::counts(&second, "shop.Order (deletes)"), (10, 0, 0, 0, 10));
    assert_eq!(common::counts(&second, "public.odd \"quoted\" table (deletes)"), (2, 0, 0, 0, 2));

    // The watermark is stored as [updated_at, key…] with the last row read, behind the scope of
    // watermark positions (so a checkpoint of another mode is never misread).
    let position: String = target_client
        .query_one("SELECT position FROM dmf.checkpoints WHERE migration = 'shop.customers'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        position,
        "watermark:updated_at\u{1f}".to_owned()
            + r#"[{"t":"timestamp_tz","v":"2030-02-01T00:00:00Z"},{"t":"int","v":3010}]"#
    );
}
