//! Where the demo's data lives: the databases, their schemas, and the generated legacy data.
//! The business rules (customers.rs) know nothing of this.

use std::collections::HashSet;
use std::sync::Arc;

use dmf_core::catalog::{Table, TableName};
use dmf_core::sync::{AnyDatabase, Database};
use dmf_core::typed::TypedDatabase;
use dmf_core::{DataMigration, EngineConfig, Identity, MigrationContext, MigrationName, Pipeline, RejectLimit, RunId};
use dmf_postgres::PgDatabase;
use dmf_sqlite::SqliteDatabase;
use dmf_testkit::{LegacyCustomer, LegacyGenerator, MemoryRunStore, MemoryTable};

use crate::customers::{CustomerTransformer, ModernCustomer, customer_rules};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A table the demo creates, in each dialect it runs on.
#[derive(Debug, Clone, Copy)]
enum DemoTable {
    Legacy,
    Modern,
}

impl DemoTable {
    fn sqlite(self) -> &'static str {
        match self {
            DemoTable::Legacy => {
                "CREATE TABLE legacy_customers (
                    id INTEGER PRIMARY KEY, full_name TEXT NOT NULL, email TEXT NOT NULL, phone TEXT NOT NULL,
                    level TEXT NOT NULL, address TEXT NOT NULL, created TEXT NOT NULL)"
            }
            DemoTable::Modern => {
                "CREATE TABLE customers (
                    id INTEGER PRIMARY KEY, legacy_id INTEGER NOT NULL UNIQUE, first_name TEXT NOT NULL,
                    last_name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, phone TEXT NOT NULL,
                    tier TEXT NOT NULL CHECK (tier IN ('vip', 'premium', 'regular')), street TEXT NOT NULL,
                    city TEXT NOT NULL, postal_code TEXT NOT NULL, created_on DATE NOT NULL)"
            }
        }
    }

    fn postgres(self) -> &'static str {
        match self {
            DemoTable::Legacy => {
                "CREATE TABLE legacy_customers (
                    id bigint PRIMARY KEY, full_name text NOT NULL, email text NOT NULL, phone text NOT NULL,
                    level text NOT NULL, address text NOT NULL, created text NOT NULL)"
            }
            DemoTable::Modern => {
                "CREATE TABLE customers (
                    id bigint PRIMARY KEY, legacy_id bigint NOT NULL UNIQUE, first_name text NOT NULL,
                    last_name text NOT NULL, email text NOT NULL UNIQUE, phone text NOT NULL,
                    tier text NOT NULL CHECK (tier IN ('vip', 'premium', 'regular')), street text NOT NULL,
                    city text NOT NULL, postal_code text NOT NULL, created_on date NOT NULL)"
            }
        }
    }

    /// Creates the table in `db`, in its dialect: DDL is the one thing the demo does per kind
    /// of database (a sync never creates tables, so [`Database`] has no method for it).
    async fn create(self, db: &AnyDatabase) -> Result<(), BoxError> {
        if let Some(sqlite) = db.downcast_ref::<SqliteDatabase>() {
            sqlite.execute_batch(self.sqlite())?;
        } else if let Some(pg) = db.downcast_ref::<PgDatabase>() {
            pg.client()
                .await?
                .batch_execute(self.postgres())
                .await
                .map_err(|e| dmf_postgres::to_dmf_error(e, dmf_core::Stage::Load, "creating the demo's tables"))?;
        } else {
            return Err(
                format!("{}: the demo creates its tables in SQLite or PostgreSQL only", db.display_name()).into()
            );
        }
        Ok(())
    }
}

pub const LEGACY: &str = "legacy_customers";
pub const MODERN: &str = "customers";

/// The table `name` of `db`, when it exists.
pub async fn table<D: Database>(db: &D, name: &str) -> dmf_core::Result<Option<Table>> {
    Ok(db.read_catalog().await?.table(&TableName::new(None, name)).cloned())
}

/// Creates the legacy table and fills it with `rows` generated customers, when it does not
/// exist yet. Returns how many rows were generated (0 when the table was already there).
pub async fn prepare_source(db: &Arc<AnyDatabase>, generator: LegacyGenerator, rows: i64) -> Result<i64, BoxError> {
    if table(db.as_ref(), LEGACY).await?.is_some() {
        return Ok(0);
    }
    DemoTable::Legacy.create(db).await?;
    let loader = db.target::<LegacyCustomer>(LEGACY).await?.without_undo();
    let rows_in_memory = MemoryTable::new(LEGACY);
    rows_in_memory.insert_rows(generator.rows(1..=rows));
    load_once("generate legacy customers", rows_in_memory, Identity::<LegacyCustomer>::default(), loader).await?;
    Ok(rows)
}

/// Creates the customers table when it does not exist, with the legacy ids `1..=preseed`
/// already migrated (as an earlier tool would have left them). Returns how many were seeded.
pub async fn prepare_target(
    db: &Arc<AnyDatabase>,
    generator: LegacyGenerator,
    preseed: i64,
) -> Result<usize, BoxError> {
    if table(db.as_ref(), MODERN).await?.is_some() {
        return Ok(0);
    }
    DemoTable::Modern.create(db).await?;
    let rules = customer_rules();
    let mut emails = HashSet::new();
    let seeded: Vec<ModernCustomer> = generator
        .rows(1..=preseed)
        .filter_map(|legacy| CustomerTransformer::map(&legacy).ok())
        .filter(|customer| rules.check(customer).is_valid() && emails.insert(customer.email.clone()))
        .collect();
    let count = seeded.len();
    let rows = MemoryTable::new(MODERN);
    rows.insert_rows(seeded);
    let loader = db.target::<ModernCustomer>(MODERN).await?.without_undo();
    load_once("seed migrated customers", rows, Identity::<ModernCustomer>::default(), loader).await?;
    Ok(count)
}

/// Runs one pipeline outside the demo's orchestrator (set-up steps).
async fn load_once<E, T, L>(name: &str, extractor: E, transformer: T, loader: L) -> Result<(), BoxError>
where
    E: dmf_core::Extractor<Item = T::Input>,
    T: dmf_core::Transformer,
    L: dmf_core::Loader<Item = T::Output>,
{
    let config = EngineConfig::builder().batch_size(5000).reject_limit(RejectLimit::Count(0)).build()?;
    let mut ctx = MigrationContext::new(RunId(0), Arc::new(config), Arc::new(MemoryRunStore::new()));
    ctx.restart = true;
    let pipeline = Pipeline::new(extractor, transformer, loader).named(MigrationName::new(format!("set-up: {name}")));
    pipeline.execute(&ctx).await?;
    Ok(())
}
