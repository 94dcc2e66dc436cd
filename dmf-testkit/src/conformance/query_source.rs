//! Query sources: a JOIN read in pages keyed on a column of its result, resumed after a kill
//! mid-table to an exact copy.

use std::sync::Arc;

use dmf_core::typed::TypedDatabase;
use dmf_core::{DataMigration, EngineConfig, Identity, MigrationContext, Pipeline, Record, RunId, RunStore};

use crate::{FaultPlan, FaultyLoader, MemoryRunStore, MemoryTable, until_crash};

/// `qs_customers (id bigint PRIMARY KEY, name text NOT NULL)`, created empty by the caller.
pub const CUSTOMERS: &str = "qs_customers";
/// `qs_addresses (customer_id bigint PRIMARY KEY, city text NOT NULL)`, created empty by the
/// caller.
pub const ADDRESSES: &str = "qs_addresses";
/// `qs_copy (id bigint PRIMARY KEY, name text NOT NULL, city text NOT NULL)`, created empty by
/// the caller: where the join is copied.
pub const COPY: &str = "qs_copy";
/// The query source: customers with their address (customers without one are left out).
pub const QUERY: &str = "SELECT c.id, c.name, a.city FROM qs_customers c JOIN qs_addresses a ON a.customer_id = c.id";

/// A row of [`CUSTOMERS`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Customer {
    /// Key.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// A row of [`ADDRESSES`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Address {
    /// The customer's id.
    pub customer_id: i64,
    /// City.
    pub city: String,
}

/// A row of [`QUERY`] and of [`COPY`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Located {
    /// The customer's id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// City.
    pub city: String,
}

impl Record for Customer {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

impl Record for Address {
    fn key(&self) -> String {
        self.customer_id.to_string()
    }
}

impl Record for Located {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

fn context(batch_size: usize) -> MigrationContext {
    let config = EngineConfig::builder().batch_size(batch_size).pipeline_depth(2).build();
    let config = config.unwrap_or_else(|e| panic!("{e}"));
    MigrationContext::new(RunId(1), Arc::new(config), Arc::new(MemoryRunStore::new()) as Arc<dyn RunStore>)
}

async fn fill<D: TypedDatabase, T: Record + Clone + PartialEq + serde::Serialize>(db: &D, table: &str, rows: Vec<T>) {
    let source = MemoryTable::new(table);
    source.insert_rows(rows);
    let target = db.target::<T>(table).await.unwrap_or_else(|e| panic!("{}", e.chain())).without_undo();
    let pipeline = Pipeline::new(source, Identity::<T>::default(), target).named(format!("fill {table}"));
    pipeline.execute(&context(500)).await.unwrap_or_else(|e| panic!("filling {table}: {}", e.chain()));
}

/// Fills [`CUSTOMERS`] (1,000 rows) and [`ADDRESSES`] (every customer but each tenth), then
/// copies [`QUERY`] into [`COPY`] in batches of 100, keyed on `id`: the first run is killed
/// (dropped mid-flight) after its fourth batch committed; the second resumes from the
/// checkpoint and reads only the rest. Checks that the copy is exactly the join's 900 rows.
pub async fn join_resumes_exactly<D: TypedDatabase>(db: &D) {
    let customers: Vec<Customer> = (1..=1000).map(|id| Customer { id, name: format!("customer {id}") }).collect();
    let addresses: Vec<Address> = (1..=1000)
        .filter(|id| id % 10 != 0)
        .map(|id| Address { customer_id: id, city: format!("city {}", id % 37) })
        .collect();
    fill(db, CUSTOMERS, customers).await;
    fill(db, ADDRESSES, addresses).await;

    let copy = |plan: FaultPlan| async move {
        let source = db.query_source::<Located>(QUERY, &["id"]).await.unwrap_or_else(|e| panic!("{}", e.chain()));
        let target = db.target::<Located>(COPY).await.unwrap_or_else(|e| panic!("{}", e.chain()));
        Pipeline::new(source, Identity::<Located>::default(), FaultyLoader::new(target, plan)).named("copy the join")
    };
    let killed = FaultPlan::new().crash_after(4);
    let first = copy(killed.clone()).await;
    let ctx = context(100);
    assert!(until_crash(killed.crash_switch(), first.execute(&ctx)).await.is_none(), "the first run is killed");
    drop(first);

    let second = copy(FaultPlan::new()).await;
    let result = second.execute(&context(100)).await.unwrap_or_else(|e| panic!("resuming: {}", e.chain()));
    assert!(result.resumed, "the second run resumes from the checkpoint");
    assert_eq!(result.counts.read, 500, "only the rows after the fourth batch are read again: {:?}", result.counts);
    assert_eq!(result.counts.inserted, 500, "{:?}", result.counts);

    let mut read = db.source::<Located>(COPY).await.unwrap_or_else(|e| panic!("{}", e.chain()));
    let batch = std::num::NonZeroUsize::new(10_000).unwrap_or(std::num::NonZeroUsize::MIN);
    let mut copied = Vec::new();
    {
        use dmf_core::Extractor;
        use futures::StreamExt;
        let mut pages = read.extract(None, batch);
        while let Some(page) = pages.next().await {
            copied.extend(page.unwrap_or_else(|e| panic!("{}", e.chain())).records);
        }
    }
    let expected: Vec<Located> = (1..=1000)
        .filter(|id| id % 10 != 0)
        .map(|id| Located { id, name: format!("customer {id}"), city: format!("city {}", id % 37) })
        .collect();
    assert_eq!(copied.len(), expected.len());
    assert!(copied == expected, "the copy is exactly the join, each row once");
}

/// A query source names what is wrong before reading any row: a key column its result lacks,
/// a field of the record type no column feeds.
pub async fn mistakes_are_named_before_the_first_batch<D: TypedDatabase>(db: &D) {
    let error = match db.query_source::<Located>(QUERY, &["customer_id"]).await {
        Ok(_) => panic!("a key the result lacks must be refused"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("no key column `customer_id`"), "{error}");
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct Wider {
        id: i64,
        name: String,
        postcode: String,
    }
    impl Record for Wider {
        fn key(&self) -> String {
            self.id.to_string()
        }
    }
    let error = match db.query_source::<Wider>(QUERY, &["id"]).await {
        Ok(_) => panic!("a field no column feeds must be refused"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("no column `postcode` for the field of Wider"), "{error}");
}
