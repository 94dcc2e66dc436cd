//! A [`SyncPlan`] turned into migrations for the orchestrator.

use std::sync::Arc;

use async_trait::async_trait;

use super::catch_up::{CATCH_UP, CatchUp, Ledger, OrphanProbe, Reporting, TargetProbe};
use super::deletes::DeleteLoader;
use super::rejected_parents::{ParentAware, RejectedRows};
use super::sequences::{RecordSequences, SEQUENCES_BEFORE, SyncSequences};
use super::{
    Database, DatabaseRole, KeyRange, MergeExtractor, MergeOutput, ReadOrder, SyncMode, SyncPlan, TablePlan, WriteMode,
};
use crate::catalog::TableName;
use crate::error::{Error, Result, Stage};
use crate::migration::{Counts, DataMigration, MigrationContext, MigrationResult, RollbackReport};
use crate::names::MigrationName;
use crate::orchestrator::{CheckOutcome, PreflightCheck};
use crate::pipeline::{Identity, Pipeline};
use crate::quality::RuleCheck;
use crate::value::Row;

/// Empties the target tables of a `full` sync, referencing tables first, in one transaction.
pub struct ClearTables<T> {
    name: MigrationName,
    target: Arc<T>,
    tables: Vec<TableName>,
}

impl<T: Database> ClearTables<T> {
    /// Clears `tables` (in this order) in `target`.
    pub fn new(target: Arc<T>, tables: Vec<TableName>) -> Self {
        Self { name: MigrationName::new(CLEAR), target, tables }
    }
}

/// The name of the migration that empties the target tables in `full` mode.
pub const CLEAR: &str = "clear target tables";

#[async_trait]
impl<T: Database> DataMigration for ClearTables<T> {
    fn name(&self) -> &MigrationName {
        &self.name
    }

    fn description(&self) -> &str {
        "deletes every row of the synced tables in the target before a full load"
    }

    async fn execute(&self, _ctx: &MigrationContext) -> Result<MigrationResult> {
        let started = std::time::Instant::now();
        let deleted = self.target.clear_tables(self.tables.clone()).await?;
        Ok(MigrationResult {
            migration: self.name.clone(),
            counts: Counts { deleted, ..Counts::default() },
            duration: started.elapsed(),
            resumed: false,
            retries: 0,
            peak_rows_in_flight: 0,
        })
    }

    async fn rollback(&self, ctx: &MigrationContext) -> Result<RollbackReport> {
        Err(Error::fatal(
            Stage::Rollback,
            format!("the rows deleted by run {} can only come back from a backup of the target", ctx.run),
        ))
    }
}

/// Runs a database's own pre-flight checks as part of the orchestrator's pre-flight.
pub struct DatabaseCheck<D> {
    database: Arc<D>,
    role: DatabaseRole,
}

impl<D: Database> DatabaseCheck<D> {
    /// Checks `database` in `role`.
    pub fn new(database: Arc<D>, role: DatabaseRole) -> Self {
        Self { database, role }
    }
}

#[async_trait]
impl<D: Database> PreflightCheck for DatabaseCheck<D> {
    async fn check(&self) -> Vec<CheckOutcome> {
        self.database.preflight(self.role).await
    }
}

fn name_with(table: &TablePlan, suffix: &str) -> MigrationName {
    MigrationName::new(format!("{} ({suffix})", table.target.name))
}

/// The migrations of a sync: one per table (named after the target table), or one per key
/// range of a table split into ranges (`TABLE [range i/N]`, each with its own checkpoint;
/// everything that waits for the table waits for all of them), plus a first step
/// emptying the tables in `full` mode, second passes for deferred foreign keys, the
/// [catch-up pass](super::CATCH_UP) in `full`, `upsert` and `diff` modes, and delete passes in
/// `diff` mode and incremental mode with delete propagation. Dependencies follow the foreign
/// keys: parents load first, children's rows are deleted first. When the plan syncs sequences
/// ([`SyncPlan::with_sequences`]), a first step records the target's values
/// ([`SEQUENCES_BEFORE`](super::SEQUENCES_BEFORE): every load waits for it) and a last one
/// sets them to the source's ([`SEQUENCES`](super::SEQUENCES), after every other step).
pub fn sync_migrations<S: Database, T: Database>(
    source: &Arc<S>,
    target: &Arc<T>,
    plan: &SyncPlan,
) -> Vec<Arc<dyn DataMigration>> {
    let mut migrations: Vec<Arc<dyn DataMigration>> = Vec::new();
    let full = plan.mode == SyncMode::Full;
    if full {
        migrations.push(Arc::new(ClearTables::new(Arc::clone(target), plan.delete_order())));
    }
    let sequences = !plan.sequences.is_empty();
    if sequences {
        migrations.push(Arc::new(RecordSequences::new(Arc::clone(target), plan.sequences.clone())));
    }
    let ledger = Arc::new(Ledger::default());
    // Rows rejected by any load of this sync: a row refused for a missing parent that is
    // among them is rejected too, never deferred.
    let rejected = Arc::new(RejectedRows::default());
    let catch_up = plan.catches_up();
    let report = |migration: Arc<dyn DataMigration>| -> Arc<dyn DataMigration> {
        if catch_up { Arc::new(Reporting::new(migration, Arc::clone(&ledger))) } else { migration }
    };
    let loads: Vec<MigrationName> = plan.tables.iter().flat_map(TablePlan::load_names).collect();
    let order = match &plan.mode {
        SyncMode::Incremental { column, .. } => ReadOrder::Watermark { column: column.clone() },
        _ => ReadOrder::Key,
    };

    for table in &plan.tables {
        // A parent split into key ranges is loaded when all its ranges are.
        let parents = table.waits_for(target.parallel_writes());
        let mut depends: Vec<MigrationName> = parents
            .iter()
            .flat_map(|parent| match plan.tables.iter().find(|t| t.target.name == *parent) {
                Some(parent) => parent.load_names(),
                None => vec![MigrationName::new(parent.to_string())],
            })
            .collect();
        if full {
            depends.push(MigrationName::new(CLEAR));
        }
        if sequences {
            // Every other write follows a load: the values before the run are recorded first.
            depends.push(MigrationName::new(SEQUENCES_BEFORE));
        }
        let write = if full { WriteMode::Insert } else { WriteMode::Upsert };
        let ranges: Vec<Option<&KeyRange>> = match table.ranges.len() {
            0 | 1 => vec![None],
            _ => table.ranges.iter().map(Some).collect(),
        };
        // A full run empties the tables first: only a backup can undo it, so its loads keep no
        // undo log (which would also send PostgreSQL's inserts through a stage table).
        let undo = plan.undo && !full;
        for (name, range) in table.load_names().into_iter().zip(ranges) {
            let within = |spec: super::ExtractSpec| match range {
                Some(range) => spec.within(range.clone()),
                None => spec,
            };
            let description = match range {
                Some(range) => format!("{} rows of {}, keys {range}", plan.mode, table.source.name),
                None => format!("{} rows of {}", plan.mode, table.source.name),
            };
            let load = Load { name, description, depends: depends.clone(), write, rejected: Arc::clone(&rejected) };
            migrations.push(report(if plan.mode == SyncMode::Diff {
                // Both sides read the same range.
                let merge = MergeExtractor::new(
                    source.extractor(within(table.extract_spec(&table.columns, ReadOrder::Key, false))),
                    target.extractor(within(table.extract_spec(&table.columns, ReadOrder::Key, true))),
                    MergeOutput::ChangedOrMissing,
                );
                load.pipeline(merge, target, table, undo)
            } else {
                let extractor = source.extractor(within(table.extract_spec(&table.columns, order.clone(), false)));
                load.pipeline(extractor, target, table, undo)
            }));
        }
    }

    let mut second_passes = Vec::new();
    for table in plan.tables.iter().filter(|t| !t.deferred.is_empty()) {
        let name = name_with(table, "deferred keys");
        second_passes.push(name.clone());
        let pass = deferred_keys(source, target, table, &order, name, loads.clone(), plan.undo, &rejected);
        migrations.push(report(pass));
    }

    let mut before_deletes = loads.clone();
    before_deletes.extend(second_passes.iter().cloned());
    if catch_up {
        let mut passes = Vec::new();
        for table in &plan.tables {
            let description = format!("upserts rows of {} that arrived during the copy", table.source.name);
            let load = Load {
                name: name_with(table, "catch-up"),
                description,
                depends: Vec::new(),
                write: WriteMode::Upsert,
                rejected: Arc::clone(&rejected),
            };
            let extractor = source.extractor(table.extract_spec(&table.columns, ReadOrder::Key, false));
            // Per row: a child written during this pass must wait for its parent (deferred),
            // never land as an orphan that would fail the proof.
            passes.push(load.pipeline(extractor, target, &per_row(table), plan.undo));
        }
        for table in plan.tables.iter().filter(|t| !t.deferred.is_empty()) {
            let name = name_with(table, "catch-up deferred keys");
            let table = per_row(table);
            passes.push(deferred_keys(source, target, &table, &ReadOrder::Key, name, Vec::new(), plan.undo, &rejected));
        }
        let proof = orphan_proof(plan, target);
        migrations.push(Arc::new(CatchUp::new(before_deletes.clone(), Arc::clone(&ledger), passes, proof)));
        before_deletes.push(MigrationName::new(CATCH_UP));
    } else if let Some(proof) = orphan_proof(plan, target) {
        // Incremental: no catch-up loads, but tables loaded without per-row checks are proven
        // all the same (an orphan fails the run, naming the foreign key).
        migrations.push(Arc::new(CatchUp::new(before_deletes.clone(), Arc::clone(&ledger), Vec::new(), Some(proof))));
        before_deletes.push(MigrationName::new(CATCH_UP));
    }

    let deletes = matches!(plan.mode, SyncMode::Diff | SyncMode::Incremental { propagate_deletes: true, .. });
    if deletes {
        for table in &plan.tables {
            let mut depends = before_deletes.clone();
            // Rows of tables referencing this one go first.
            depends.extend(
                plan.tables
                    .iter()
                    .filter(|child| child.after.contains(&table.target.name))
                    .map(|c| name_with(c, "deletes")),
            );
            let merge = MergeExtractor::new(
                source.extractor(table.extract_spec(&table.key, ReadOrder::Key, false)),
                target.extractor(table.extract_spec(&table.key, ReadOrder::Key, true)),
                MergeOutput::MissingInSource,
            );
            let mut spec = table.load_spec(&table.key, WriteMode::Delete, Default::default());
            spec.undo = plan.undo;
            // Deletes come after the proof: they keep per-row checks, so that a delete the
            // target's own rows still reference is held back, not left as an orphan. Only a
            // NOT NULL cycle's tables skip them (no delete order exists for those).
            spec.trust_foreign_keys = table.trust_foreign_keys && !table.unordered.is_empty();
            let loader = DeleteLoader::new(target.loader(spec));
            migrations.push(Arc::new(
                Pipeline::new(merge, Identity::<Row>::default(), loader)
                    .named(name_with(table, "deletes"))
                    .describe(format!("deletes rows of {} that are gone from the source", table.target.name))
                    .depends_on(depends),
            ));
        }
    }
    if sequences {
        let before = MigrationName::new(SEQUENCES_BEFORE);
        let all: Vec<MigrationName> = migrations.iter().map(|m| m.name().clone()).filter(|n| *n != before).collect();
        migrations.push(Arc::new(SyncSequences::new(
            Arc::clone(source),
            Arc::clone(target),
            plan.sequences.clone(),
            all,
        )));
    }
    migrations
}

/// `table`, loaded with the target's per-row foreign-key checks.
fn per_row(table: &TablePlan) -> TablePlan {
    TablePlan { trust_foreign_keys: false, ..table.clone() }
}

/// A pass writing a table's moved columns (deferred foreign keys as NULL in new rows).
struct Load {
    name: MigrationName,
    description: String,
    depends: Vec<MigrationName>,
    write: WriteMode,
    /// The sync's rejected rows (see [`ParentAware`]).
    rejected: Arc<RejectedRows>,
}

impl Load {
    fn pipeline<E, T>(self, extractor: E, target: &Arc<T>, table: &TablePlan, undo: bool) -> Arc<dyn DataMigration>
    where
        E: crate::pipeline::Extractor<Item = Row> + 'static,
        T: Database,
    {
        let mut spec = table.load_spec(&table.columns, self.write, table.deferred_columns());
        spec.undo = undo;
        Arc::new(
            Pipeline::new(extractor, Identity::<Row>::default(), parent_aware(target, spec, table, &self.rejected))
                .named(self.name)
                .describe(self.description)
                .depends_on(self.depends),
        )
    }
}

/// `target`'s loader for `spec`, rejecting the rows of `table` whose parent was rejected.
fn parent_aware<T: Database>(
    target: &Arc<T>,
    spec: super::LoadSpec,
    table: &TablePlan,
    rejected: &Arc<RejectedRows>,
) -> ParentAware<T::Loader> {
    let foreign_keys = table.target.foreign_keys.clone();
    ParentAware::new(target.loader(spec), table.target.name.clone(), foreign_keys, Arc::clone(rejected))
}

/// The second pass filling a table's deferred foreign-key columns.
#[allow(clippy::too_many_arguments)]
fn deferred_keys<S: Database, T: Database>(
    source: &Arc<S>,
    target: &Arc<T>,
    table: &TablePlan,
    order: &ReadOrder,
    name: MigrationName,
    depends: Vec<MigrationName>,
    undo: bool,
    rejected: &Arc<RejectedRows>,
) -> Arc<dyn DataMigration> {
    let mut columns = table.fixup_columns();
    if let ReadOrder::Watermark { column } = order {
        if !columns.contains(column) {
            columns.push(column.clone());
        }
    }
    let extractor = source.extractor(table.extract_spec(&columns, order.clone(), false));
    let mut spec = table.load_spec(&columns, WriteMode::Update, Default::default());
    spec.undo = undo;
    // Per row: every row these keys point to is loaded by now, and an update must fire the
    // table's UPDATE triggers, which the fast path (asked about inserts only) does not silence.
    spec.trust_foreign_keys = false;
    Arc::new(
        Pipeline::new(extractor, Identity::<Row>::default(), parent_aware(target, spec, table, rejected))
            .named(name)
            .describe(format!("fills the foreign keys of {} deferred to break a cycle", table.target.name))
            .depends_on(depends),
    )
}

/// The set-based proof of every foreign key of the tables `plan` loads without per-row checks,
/// if it has any.
fn orphan_proof<T: Database>(plan: &SyncPlan, target: &Arc<T>) -> Option<Box<dyn OrphanProbe>> {
    plan.trusts_foreign_keys().then(|| {
        let checks = plan
            .tables
            .iter()
            .filter(|t| t.trust_foreign_keys)
            .flat_map(|t| {
                t.target.foreign_keys.iter().map(|fk| RuleCheck::ForeignKey {
                    table: t.target.name.clone(),
                    key: t.key.clone(),
                    foreign_key: fk.clone(),
                })
            })
            .collect();
        let tables = plan.tables.iter().filter(|t| t.trust_foreign_keys).map(|t| t.target.name.clone()).collect();
        Box::new(TargetProbe { target: Arc::clone(target), checks, tables }) as Box<dyn OrphanProbe>
    })
}
