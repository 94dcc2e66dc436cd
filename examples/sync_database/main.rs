//! # sync_database: the library behind `dmf sync`, in one page
//!
//! The command-line tool is `dmf` (`cargo install --path dmf-cli`; `dmf sync --help`). This
//! example shows what it does with the library: open two databases by URL, plan the sync in
//! foreign-key order, run it (resuming an unfinished run of the same plan), and verify the copy
//! row by row.
//!
//! ```sh
//! cargo run --example sync_database -- sqlite://prod.db sqlite://test.db
//! cargo run --example sync_database -- postgres://reader@prod/shop postgres://dmf@test/shop
//! ```
//!
//! Exits 0 when the target equals the source afterwards, 1 when it differs, 3 when the sync
//! failed (run it again: it resumes).

use std::process::ExitCode;
use std::sync::Arc;

use dmf::sync::{SyncJob, SyncMode};
use dmf::{EngineConfig, RunRequest};

#[tokio::main]
async fn main() -> ExitCode {
    let urls: Vec<String> = std::env::args().skip(1).collect();
    let [source, target] = urls.as_slice() else {
        eprintln!("usage: sync_database SOURCE_URL TARGET_URL");
        return ExitCode::from(2);
    };
    match sync(source, target).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("error: {}", dmf::error_chain(&error));
            ExitCode::from(3)
        }
    }
}

/// Syncs `source` into `target` (upsert) and verifies the copy; true when they are equal.
async fn sync(source: &str, target: &str) -> dmf::Result<bool> {
    // Any kind of database on either side, chosen by its URL's scheme.
    let source = Arc::new(dmf::open(source).await?);
    let target = Arc::new(dmf::open(target).await?);
    let job = SyncJob::new(Arc::clone(&source), Arc::clone(&target), SyncMode::Upsert)
        .engine(EngineConfig::builder().batch_size(5000).build()?)
        .jobs(4);
    let plan = job.plan().await?;
    println!(
        "tables in load order: {}",
        plan.tables.iter().map(|t| t.target.name.to_string()).collect::<Vec<_>>().join(", ")
    );
    // Resumes the target's last run when it did not end and planned the same tables.
    let summary = job.run(RunRequest::all()).await?;
    println!("pre-flight:\n{}", summary.preflight);
    print!("{summary}");
    // A failed run becomes an error carrying its summary.
    let _completed = summary.into_result()?;
    let report = dmf::quality::verify(source.as_ref(), target.as_ref(), &plan, &[], 10).await?;
    print!("{report}");
    println!("{}", report.verdict());
    Ok(report.passed())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn syncs_one_sqlite_file_into_another_and_verifies_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let schema = "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
                      CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers (id));";
        let (source, target) = (dir.path().join("prod.db"), dir.path().join("test.db"));
        let prod = rusqlite::Connection::open(&source).unwrap();
        prod.execute_batch(schema).unwrap();
        prod.execute_batch("INSERT INTO customers VALUES (1, 'a'), (2, 'b'); INSERT INTO orders VALUES (1, 2);")
            .unwrap();
        rusqlite::Connection::open(&target).unwrap().execute_batch(schema).unwrap();
        let urls = (format!("sqlite://{}", source.display()), format!("sqlite://{}", target.display()));
        assert!(super::sync(&urls.0, &urls.1).await.unwrap());
        let copied: i64 = rusqlite::Connection::open(&target)
            .unwrap()
            .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
            .unwrap();
        assert_eq!(copied, 1);
    }
}
