//! Rejects at the cost of the row: a loader that isolates failing rows loads a dirty batch in
//! one pass, and the engine rejects exactly the rows the target refused.

use std::sync::Arc;

use dmf_core::catalog::TableName;
use dmf_core::sync::{Database, LoadSpec, WriteMode};
use dmf_core::typed::TypedLoader;
use dmf_core::{
    DataMigration, EngineConfig, Identity, MigrationContext, Pipeline, Record, RejectLimit, RunId, RunStore, Stage,
};

use crate::{CountingLoader, MemoryRunStore, MemoryTable};

/// The table [`one_pass`] loads, which the caller creates empty in its dialect:
/// `people (id bigint PRIMARY KEY, email text NOT NULL UNIQUE)`.
pub const PEOPLE: &str = "people";

/// A row of [`PEOPLE`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Person {
    /// The key.
    pub id: i64,
    /// NOT NULL UNIQUE in the table.
    pub email: Option<String>,
}

impl Record for Person {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

/// Loads 5,000 people in one batch of 5,000 into `db`'s empty [`PEOPLE`] table: row 2,500
/// repeats the email of row 10, row 4,000 has none. Checks that 4,998 rows are inserted, that
/// the two are rejected at the load stage naming their constraint, and that the batch went to
/// the target once: two calls of the loader (the batch, then the migration's closing
/// checkpoint) carrying 5,000 rows in all, where bisection would send its halves again and
/// again.
pub async fn one_pass<D: Database>(db: &D) {
    let catalog = db.read_catalog().await.unwrap_or_else(|e| panic!("reading the catalog: {}", e.chain()));
    let table = catalog
        .table(&TableName::new(None, PEOPLE))
        .unwrap_or_else(|| panic!("create the `{PEOPLE}` table first"))
        .clone();
    let spec = LoadSpec::whole_table(&table, WriteMode::Insert).unwrap_or_else(|e| panic!("{}", e.chain()));
    let typed = TypedLoader::new(db.loader(spec.clone()), table.name.clone(), spec.columns, &spec.key);
    let (loader, calls) = CountingLoader::new(typed);

    let source = MemoryTable::new("people source");
    source.insert_rows((1..=5000).map(|id| Person {
        id,
        email: match id {
            2500 => Some("person10@example.com".to_owned()),
            4000 => None,
            id => Some(format!("person{id}@example.com")),
        },
    }));
    let config = EngineConfig::builder()
        .batch_size(5000)
        .reject_limit(RejectLimit::Count(10))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(MemoryRunStore::new());
    let ctx = MigrationContext::new(RunId(1), Arc::new(config), Arc::clone(&store) as Arc<dyn RunStore>);
    let pipeline = Pipeline::new(source, Identity::<Person>::default(), loader).named("people");
    let result = pipeline.execute(&ctx).await.unwrap_or_else(|e| panic!("loading people: {}", e.chain()));

    assert_eq!(result.counts.inserted, 4998, "{:?}", result.counts);
    assert_eq!(result.counts.rejected, 2, "{:?}", result.counts);
    assert_eq!(calls.rows(), 5000, "every row was sent once: no batch went twice");
    assert_eq!(calls.calls(), 2, "the batch, then the closing checkpoint");
    let rejects = store.rejects(RunId(1), None, 10, 0).await.unwrap_or_else(|e| panic!("{}", e.chain()));
    let keys: Vec<&str> = rejects.iter().map(|r| r.reject.key.as_str()).collect();
    assert_eq!(keys, ["2500", "4000"]);
    assert!(rejects.iter().all(|r| r.reject.stage == Stage::Load));
    let reasons: Vec<String> = rejects.iter().map(|r| r.reject.reason.to_lowercase()).collect();
    assert!(reasons[0].contains("unique") || reasons[0].contains("duplicate"), "{}", reasons[0]);
    assert!(reasons[1].contains("null"), "{}", reasons[1]);
    assert!(reasons[0].contains("people"), "the reason names the table: {}", reasons[0]);
}
