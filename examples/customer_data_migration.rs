//! # `CustomerDataMigration`: the reference design's migration, in a page of DMF
//!
//! Legacy customers (`legacy_customers`) into the new schema (`customers`): the level mapped to
//! a tier, phones normalised to E.164, addresses parsed, names split, every row validated (the
//! business rules are `customer_migration/customers.rs`, shared with the customer demo). Around
//! them, the wiring below gives: pre-flight before any write (`can_execute`), a run record and
//! a reject quarantine in the target, customers already migrated skipped by the target itself,
//! progress on stderr, resume after a crash, and `--rollback` of the last run from its undo log.
//!
//! ```sh
//! # ./dmf-demo/legacy.db with 100,000 generated customers (2 % dirty), migrated into ./dmf-demo/modern.db
//! cargo run --release --example customer_data_migration
//! cargo run --release --example customer_data_migration -- --rollback
//! cargo run --release --example customer_data_migration -- sqlite://legacy.db postgres://me@localhost/modern
//! ```

#[path = "customer_migration/customers.rs"]
#[allow(dead_code)]
mod customers;
#[path = "customer_migration/storage.rs"]
#[allow(dead_code)]
mod storage;

use std::sync::Arc;

use dmf::sync::{Database, DatabaseCheck, DatabaseRole};
use dmf::typed::TypedDatabase;
use dmf::{EngineConfig, Orchestrator, Phase, Pipeline, RejectLimit, RollbackTarget, RunRequest};
use dmf_testkit::{LegacyCustomer, LegacyGenerator};

use customers::{CustomerTransformer, ModernCustomer, customer_rules};

#[tokio::main]
async fn main() -> Result<(), storage::BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rollback = args.iter().any(|a| a == "--rollback");
    let mut urls = args.iter().filter(|a| !a.starts_with("--")).cloned();
    std::fs::create_dir_all("dmf-demo")?;
    let legacy_url = urls.next().unwrap_or_else(|| "sqlite://dmf-demo/legacy.db".into());
    let modern_url = urls.next().unwrap_or_else(|| "sqlite://dmf-demo/modern.db".into());
    let open = dmf::OpenOptions::new().create_missing(true);
    let (legacy, modern) = (Arc::new(open.open(&legacy_url).await?), Arc::new(open.open(&modern_url).await?));
    // Demo data, on the first run only: the legacy table, and a target with 50 customers migrated.
    storage::prepare_source(&legacy, LegacyGenerator::new(42), 100_000).await?;
    storage::prepare_target(&modern, LegacyGenerator::new(42), 50).await?;

    // --- The migration: read, map, validate, write. ---
    let customers = Pipeline::new(
        legacy.source::<LegacyCustomer>("legacy_customers").await?,
        CustomerTransformer,
        modern.target::<ModernCustomer>("customers").await?.insert_or_skip(),
    )
    .named("customers")
    .describe("legacy customers into the new customer schema")
    .validate(customer_rules());

    // --- Running it: pre-flight, run records and rejects in the target, engine settings. ---
    let orchestrator = Orchestrator::builder(modern.run_store().await?)
        .preflight(DatabaseCheck::new(Arc::clone(&legacy), DatabaseRole::Source))
        .preflight(DatabaseCheck::new(Arc::clone(&modern), DatabaseRole::Target))
        .engine(
            EngineConfig::builder()
                .batch_size(5000)
                .reject_limit(RejectLimit::Ratio { max: 0.05, min_rows: 1000 })
                .build()?,
        )
        .migration(customers)
        .build()?;
    if rollback {
        let undone = orchestrator.rollback(RollbackTarget::Migrations(vec!["customers".into()])).await?;
        for (migration, run, report) in &undone.undone {
            println!(
                "rolled back `{migration}` of run {run}: {} rows deleted, {} restored",
                report.deleted, report.restored
            );
        }
        return Ok(());
    }
    let mut events = orchestrator.progress().subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if event.phase == Phase::Loading && event.rows_done % 100_000 < 5000 {
                eprintln!("{} rows read, {:.0} rows/s, {:?}", event.rows_done, event.rows_per_sec, event.counts);
            }
        }
    });
    let summary = orchestrator.run(RunRequest::all()).await?;
    print!("pre-flight:\n{}\n{summary}", summary.preflight);
    Ok(())
}
