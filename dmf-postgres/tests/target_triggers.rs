//! Target triggers against the sync: a `BEFORE UPDATE` trigger that stamps `last_update` on
//! the target makes every upsert rewrite the rows it touched (the stamp differs from the
//! source again), which pre-flight names; with `--skip-target-triggers` the loading sessions
//! skip it (`session_replication_role = replica`, the table's foreign keys proven after the
//! load) and the sync converges: the second run after a change writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use dmf_core::sync::{SyncJob, SyncMode, TRIGGER_CHECK};
use dmf_core::{CheckStatus, RunRequest, RunStatus, RunSummary};

const SCHEMA: &str = "
CREATE TABLE language (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE film (id int PRIMARY KEY, title text NOT NULL, language_id int NOT NULL REFERENCES language,
    last_update timestamptz NOT NULL DEFAULT now());";

const DATA: &str = "
INSERT INTO language VALUES (1, 'English'), (2, 'Italian');
INSERT INTO film (id, title, language_id, last_update)
    SELECT g, 'film ' || g, 1 + g % 2, timestamptz '2006-02-15 05:03:42+00' FROM generate_series(1, 40) g;";

/// The stamping trigger of the Sakila sample schema, on the target only.
const STAMP: &str = "
CREATE FUNCTION stamp_last_update() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN NEW.last_update = clock_timestamp(); RETURN NEW; END $$;
CREATE TRIGGER film_last_update BEFORE UPDATE ON film FOR EACH ROW EXECUTE FUNCTION stamp_last_update();";

/// The source changes two titles (and stamps them, as its own trigger would).
const CHANGE: &str = "UPDATE film SET title = title || ' (restored)', last_update = timestamptz '2026-12-01 00:00:00+00' \
     WHERE id IN (3, 17)";

async fn pair(label: &str) -> (common::TestDb, common::TestDb) {
    let (source, target) =
        (common::TestDb::create(&format!("{label}_src")).await, common::TestDb::create(&format!("{label}_dst")).await);
    source.client().await.batch_execute(&format!("{SCHEMA}{DATA}")).await.unwrap();
    target.client().await.batch_execute(&format!("{SCHEMA}{STAMP}")).await.unwrap();
    (source, target)
}

fn film_updates(summary: &RunSummary) -> u64 {
    summary.migration("public.film").unwrap().counts.updated
}

fn trigger_line(summary: &RunSummary) -> (CheckStatus, String) {
    let line = summary.preflight.outcomes.iter().find(|o| o.check == TRIGGER_CHECK).unwrap();
    (line.status, line.detail.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_preflight_names_the_stamping_trigger_and_upserts_never_converge() {
    let (source_db, target_db) = pair("trg_plain").await;
    let job = SyncJob::new(source_db.database(), target_db.database(), SyncMode::Upsert);
    let first = job.run(RunRequest::all()).await.unwrap();
    assert_eq!(first.status, RunStatus::Completed, "{first}");
    let (status, detail) = trigger_line(&first);
    assert_eq!(status, CheckStatus::Warning);
    assert!(
        detail.starts_with(
            "these triggers fire on the sync's writes (INSERT, UPDATE): film_last_update (BEFORE UPDATE) on public.film."
        ),
        "{detail}"
    );

    source_db.client().await.batch_execute(CHANGE).await.unwrap();
    let second = job.run(RunRequest::all()).await.unwrap();
    assert_eq!(film_updates(&second), 2, "{second}");
    // The trigger stamped both rows again: they differ from the source and are rewritten.
    let third = job.run(RunRequest::all()).await.unwrap();
    assert_eq!(film_updates(&third), 2, "the stamped rows are rewritten on every run\n{third}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_flag_upsert_and_diff_skip_the_trigger_and_converge_in_two_runs() {
    for mode in [SyncMode::Upsert, SyncMode::Diff] {
        let (source_db, target_db) = pair(if mode == SyncMode::Upsert { "trg_up" } else { "trg_diff" }).await;
        let job = SyncJob::new(source_db.database(), target_db.database(), mode.clone()).skip_target_triggers(true);
        let plan = job.plan().await.unwrap();
        let film = plan.tables.iter().find(|t| t.target.name.name == "film").unwrap();
        assert!(film.trust_foreign_keys, "{mode}: written by sessions that skip triggers");
        let language = plan.tables.iter().find(|t| t.target.name.name == "language").unwrap();
        assert!(!language.trust_foreign_keys, "{mode}: a table without triggers keeps per-row checks");

        let first = job.run(RunRequest::all()).await.unwrap();
        assert_eq!(first.status, RunStatus::Completed, "{mode}: {first}");
        let (status, detail) = trigger_line(&first);
        assert_eq!(status, CheckStatus::Passed, "{mode}: {detail}");
        assert!(detail.ends_with("after the load: film_last_update (BEFORE UPDATE) on public.film"), "{detail}");

        source_db.client().await.batch_execute(CHANGE).await.unwrap();
        let second = job.run(RunRequest::all()).await.unwrap();
        assert_eq!((second.status, film_updates(&second)), (RunStatus::Completed, 2), "{mode}: {second}");
        let third = job.run(RunRequest::all()).await.unwrap();
        assert_eq!(film_updates(&third), 0, "{mode}: converged\n{third}");
        assert_eq!(third.totals().inserted + third.totals().updated + third.totals().deleted, 0, "{third}");

        let stamps = "SELECT string_agg(id || '@' || last_update::text, ',' ORDER BY id) FROM film";
        let (ours, theirs): (String, String) = (
            source_db.client().await.query_one(stamps, &[]).await.unwrap().get(0),
            target_db.client().await.query_one(stamps, &[]).await.unwrap().get(0),
        );
        assert_eq!(ours, theirs, "{mode}: the source's stamps, not the trigger's");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_flag_a_row_written_without_checks_whose_parent_the_target_lacks_fails_the_run() {
    let (source_db, target_db) = pair("trg_orphan").await;
    let film = dmf_core::catalog::TableName::new(Some("public"), "film");
    target_db.client().await.batch_execute("INSERT INTO language VALUES (1, 'English'), (2, 'Italian')").await.unwrap();
    // Only films are synced, and a new one speaks a language the target does not have.
    source_db
        .client()
        .await
        .batch_execute("INSERT INTO language VALUES (3, 'Klingon'); INSERT INTO film (id, title, language_id) VALUES (41, 'qapla', 3)")
        .await
        .unwrap();
    let job = SyncJob::new(source_db.database(), target_db.database(), SyncMode::Upsert)
        .tables(vec![film])
        .skip_target_triggers(true);
    let summary = job.run(RunRequest::all()).await.unwrap();
    assert_eq!(summary.status, RunStatus::Failed, "{summary}");
    let error = summary.error.clone().unwrap_or_default();
    assert!(error.contains("film_language_id_fkey"), "the proof names the foreign key: {error}");
}
