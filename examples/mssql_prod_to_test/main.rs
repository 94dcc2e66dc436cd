//! # mssql_prod_to_test: seed a SQL Server test database from production, the library calls
//!
//! The whole flow of the prod-to-test design with SQL Server's own pieces, configured from the
//! environment (the command-line tool is `dmf sync`; this example shows the library):
//!
//! 1. pre-flight of both servers: version, database state, **Always On** role and health (the
//!    source may be a readable secondary; the target must be a writable primary, and with
//!    `DMF_TARGET_IS_PRODUCTION=1` it is refused), DMF's control tables;
//! 2. the schema check and the tables in foreign-key order (nothing is created or altered);
//! 3. a `COPY_ONLY` backup of the test database (`BACKUP … WITH COPY_ONLY, CHECKSUM, INIT`,
//!    then `RESTORE VERIFYONLY`) before the first write;
//! 4. an **incremental MERGE sync** by a watermark column (a `rowversion` or a modified-date
//!    column) with delete propagation and an undo log (`dmf rollback last` undoes a run);
//! 5. the **quality report**: every table compared row by row with production;
//! 6. a **notification** by Database Mail when `DMF_MAIL=PROFILE:RECIPIENTS` is set, and in
//!    the log.
//!
//! ```sh
//! export DMF_SOURCE_URL='Server=prod-listener,1433;Database=Sales;User Id=reader;Password=…;ApplicationIntent=ReadOnly'
//! export DMF_TARGET_URL='mssql://dmf:…@test-sql/Sales?trust_server_certificate=true'
//! DMF_WATERMARK=rv DMF_BACKUP_DIR=/var/opt/mssql/backup cargo run --release --example mssql_prod_to_test
//! ```
//!
//! Exits 0 when the test database equals production afterwards, 1 when it differs, 2 when a
//! setting is missing, 3 when the sync failed (run it again: it resumes).

use std::process::ExitCode;
use std::sync::Arc;

use dmf::mssql::{MssqlDatabase, MssqlOptions};
use dmf::sync::{Database, SyncJob, SyncMode};
use dmf::{EngineConfig, LogNotifier, RunRequest};

/// A setting from the environment; a missing required one ends the program with exit 2.
fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let (Some(source), Some(target), Some(watermark)) =
        (setting("DMF_SOURCE_URL"), setting("DMF_TARGET_URL"), setting("DMF_WATERMARK"))
    else {
        eprintln!("set DMF_SOURCE_URL, DMF_TARGET_URL and DMF_WATERMARK (see the example's documentation)");
        return ExitCode::from(2);
    };
    match seed(&source, &target, &watermark).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {}", dmf::error_chain(&error));
            ExitCode::from(3)
        }
    }
}

async fn seed(source: &str, target: &str, watermark: &str) -> dmf::Result<bool> {
    let source = Arc::new(MssqlDatabase::connect(source).await?);
    let target = MssqlDatabase::connect(target).await?;
    // Keep what the connection string chose (`upsert=update_insert` for a MERGE-free load).
    let production = setting("DMF_TARGET_IS_PRODUCTION").is_some();
    let target = Arc::new(target.clone().with_options(MssqlOptions { production, ..target.options().clone() }));
    let mode = SyncMode::Incremental { column: watermark.to_owned(), propagate_deletes: true };
    let mut job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), mode)
        .engine(EngineConfig::builder().batch_size(5000).build()?)
        .undo(true)
        .backup(target.backup(setting("DMF_BACKUP_DIR").as_deref()))
        .notifier(LogNotifier);
    if let Some((profile, recipients)) = setting("DMF_MAIL").as_deref().and_then(|mail| mail.split_once(':')) {
        job = job.notifier(target.mail_notifier(profile, recipients));
    }
    let plan = job.plan().await?;
    println!("seeding {} from {}, tables in foreign-key order:", target.display_name(), source.display_name());
    for table in &plan.tables {
        println!("  {}", table.target.name);
    }
    // Incremental migrations run every time: each run reads what changed since the last one.
    let summary = job.orchestrator(&plan).await?.run(RunRequest::all().force()).await?;
    println!("\npre-flight:\n{}", summary.preflight);
    print!("{summary}");
    let _completed = summary.into_result()?;
    println!("\nquality report:");
    let report = dmf::quality::verify(source.as_ref(), target.as_ref(), &plan, &[], 10).await?;
    print!("{report}");
    println!("{}", report.verdict());
    Ok(report.passed())
}
