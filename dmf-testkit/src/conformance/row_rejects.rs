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

/// What [`people_pipeline`] builds.
type PeoplePipeline<D> =
    Pipeline<MemoryTable<Person>, Identity<Person>, CountingLoader<TypedLoader<<D as Database>::Loader, Person>>>;

/// A pipeline loading `people` into `db`'s [`PEOPLE`] table in `write` mode (with an undo log),
/// its loader counted.
async fn people_pipeline<D: Database>(
    db: &D,
    name: &str,
    write: WriteMode,
    people: Vec<Person>,
) -> (PeoplePipeline<D>, Arc<crate::LoadCalls>) {
    let catalog = db.read_catalog().await.unwrap_or_else(|e| panic!("reading the catalog: {}", e.chain()));
    let table = catalog
        .table(&TableName::new(None, PEOPLE))
        .unwrap_or_else(|| panic!("create the `{PEOPLE}` table first"))
        .clone();
    let mut spec = LoadSpec::whole_table(&table, write).unwrap_or_else(|e| panic!("{}", e.chain()));
    spec.undo = true;
    let typed = TypedLoader::new(db.loader(spec.clone()), table.name.clone(), spec.columns, &spec.key);
    let (loader, calls) = CountingLoader::new(typed);
    let source = MemoryTable::new(&format!("{name} source"));
    source.insert_rows(people);
    (Pipeline::new(source, Identity::<Person>::default(), loader).named(name), calls)
}

fn person(id: i64) -> Person {
    Person { id, email: Some(format!("person{id}@example.com")) }
}

fn context(run: i64, batch_size: usize, store: &Arc<MemoryRunStore>) -> MigrationContext {
    let config = EngineConfig::builder()
        .batch_size(batch_size)
        .pipeline_depth(2)
        .reject_limit(RejectLimit::Count(10))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    MigrationContext::new(RunId(run), Arc::new(config), Arc::clone(store) as Arc<dyn RunStore>)
}

/// Insert or skip, in `db`'s empty [`PEOPLE`] table: people 1..=1,000 are loaded first; then
/// people 1..=3,000 in `insert_or_skip` mode, person 2,999 with person 7's email. Checks that
/// the 1,000 are counted skipped by the database (nothing read from the target beforehand: the
/// engine's peak rows in flight stays within its bound), 1,999 inserted, 2,999 rejected for its
/// duplicate email although its key is new; and that rolling that run back removes exactly the
/// rows it inserted.
pub async fn insert_or_skip<D: Database>(db: &D) {
    let store = Arc::new(MemoryRunStore::new());
    let (first, _) = people_pipeline(db, "first", WriteMode::Insert, (1..=1000).map(person).collect()).await;
    let result = first.execute(&context(1, 500, &store)).await.unwrap_or_else(|e| panic!("{}", e.chain()));
    assert_eq!(result.counts.inserted, 1000);

    let people = (1..=3000)
        .map(|id| match id {
            2999 => Person { id, email: person(7).email },
            id => person(id),
        })
        .collect();
    let (second, calls) = people_pipeline(db, "second", WriteMode::InsertOrSkip, people).await;
    let ctx = context(2, 250, &store);
    let result = second.execute(&ctx).await.unwrap_or_else(|e| panic!("{}", e.chain()));
    assert_eq!(result.counts.skipped, 1000, "{:?}", result.counts);
    assert_eq!(result.counts.inserted, 1999, "{:?}", result.counts);
    assert_eq!(result.counts.rejected, 1, "{:?}", result.counts);
    assert_eq!(calls.rows(), 3000, "each row sent once");
    assert!(
        result.peak_rows_in_flight <= ctx.config.max_rows_in_flight() as u64,
        "peak {} rows in flight, bound {}",
        result.peak_rows_in_flight,
        ctx.config.max_rows_in_flight()
    );
    let rejects = store.rejects(RunId(2), None, 10, 0).await.unwrap_or_else(|e| panic!("{}", e.chain()));
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].reject.key, "2999");

    let undone = second.rollback(&ctx).await.unwrap_or_else(|e| panic!("rolling back: {}", e.chain()));
    assert_eq!(undone.deleted, 1999, "the rows the run inserted, not the 1,000 it skipped");
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
