//! What a sync will do, decided from both catalogs before anything is written.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::{
    ExtractSpec, ForeignKeyChecks, ForeignKeyTrust, KeyRange, LoadSpec, ReadOrder, SyncMode, TriggerPolicy, WriteMode,
};
use crate::catalog::{Catalog, Column, ForeignKey, LoadOrder, SchemaDiff, Table, TableName};
use crate::error::{Error, Result};
use crate::names::MigrationName;
use crate::orchestrator::{CheckOutcome, PreflightCheck};

/// The pre-flight line saying how foreign keys are checked.
pub const FK_CHECK: &str = "FK checks";
use crate::value::RowShape;

/// One table of a sync.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The table as the source has it.
    pub source: Table,
    /// The table as the target has it.
    pub target: Table,
    /// The columns moved, in the source's column order (present and writable on both sides).
    pub columns: Vec<String>,
    /// The row key (primary key, or a NOT NULL unique key).
    pub key: Vec<String>,
    /// Foreign keys loaded as NULL first and filled by a second pass (cycles, self-references).
    pub deferred: Vec<ForeignKey>,
    /// Foreign keys of a cycle whose columns are all NOT NULL, left out of the load order
    /// ([`TableStep::unordered`](crate::catalog::TableStep::unordered)): this table loads
    /// before the rows they reference, so only sessions that skip per-row checks can write it.
    pub unordered: Vec<ForeignKey>,
    /// Tables of the sync that must be loaded before this one.
    pub after: Vec<TableName>,
    /// The loading sessions skip per-row foreign-key checks for this table; the sync proves
    /// its foreign keys with set-based queries instead.
    pub trust_foreign_keys: bool,
    /// The key ranges read at the same time, one migration each (see
    /// [`SyncPlan::with_key_ranges`]); empty when one reader reads the whole table.
    pub ranges: Vec<KeyRange>,
}

impl TablePlan {
    /// The migration that loads this table: named after the target table.
    pub fn migration_name(&self) -> MigrationName {
        MigrationName::new(self.target.name.to_string())
    }

    fn columns_of(&self, table: &Table, names: &[String]) -> Vec<Column> {
        names.iter().filter_map(|name| table.column(name).cloned()).collect()
    }

    fn shape(&self, table: &Table, names: &[String]) -> Arc<RowShape> {
        let key = self.key.iter().filter_map(|k| names.iter().position(|c| c == k)).collect();
        Arc::new(RowShape { table: table.name.clone(), columns: names.to_vec(), key })
    }

    /// The tables whose loads this table's load waits for, into a target whose loaders write
    /// at the same time or not ([`Database::parallel_writes`](super::Database::parallel_writes)).
    ///
    /// Its parents ([`after`](Self::after)), unless it is loaded without per-row foreign-key
    /// checks into a target that writes in parallel: its rows then need no parent row when they
    /// arrive, so it loads beside its parents, and the proof after every load finds any row
    /// still missing one. A target that writes one transaction at a time (SQLite) gains no
    /// speed from that, since its loaders only take turns: there a child still follows its
    /// parents, so that its rows do not wait in memory beside theirs.
    pub fn waits_for(&self, parallel_writes: bool) -> &[TableName] {
        if self.trust_foreign_keys && parallel_writes { &[] } else { &self.after }
    }

    /// Columns loaded as NULL in the first pass.
    pub fn deferred_columns(&self) -> BTreeSet<String> {
        self.deferred.iter().flat_map(|fk| fk.columns.iter().cloned()).collect()
    }

    /// Reading `names` from the source (`from_target` false) or the target, in `order`.
    pub fn extract_spec(&self, names: &[String], order: ReadOrder, from_target: bool) -> ExtractSpec {
        let table = if from_target { &self.target } else { &self.source };
        ExtractSpec {
            table: table.name.clone(),
            columns: self.columns_of(table, names),
            key: self.key.clone(),
            order,
            shape: self.shape(table, names),
            range: None,
            query: None,
        }
    }

    /// The migrations loading this table: one per key range (`TABLE [range i/N]`), or one
    /// named after the table when it is not split.
    pub fn load_names(&self) -> Vec<MigrationName> {
        match self.ranges.len() {
            0 | 1 => vec![self.migration_name()],
            count => (1..=count).map(|i| super::range_migration_name(&self.target.name, i, count)).collect(),
        }
    }

    /// Writing `names` to the target.
    pub fn load_spec(&self, names: &[String], write: WriteMode, null_columns: BTreeSet<String>) -> LoadSpec {
        LoadSpec {
            table: self.target.name.clone(),
            columns: self.columns_of(&self.target, names),
            key: self.key.clone(),
            write,
            null_columns,
            undo: false,
            trust_foreign_keys: self.trust_foreign_keys,
        }
    }

    /// The key columns followed by the deferred columns (for the second pass).
    pub fn fixup_columns(&self) -> Vec<String> {
        let mut names = self.key.clone();
        names.extend(self.deferred_columns().into_iter().filter(|c| !self.key.contains(c)));
        names
    }
}

/// Why a table of the source is not in a plan's [`tables`](SyncPlan::tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The target has no such table (a sync never creates one): a difference, which pre-flight
    /// refuses and verification reports.
    MissingInTarget,
    /// The table has no primary key and no NOT NULL unique key, so it can be neither read in
    /// resumable order nor compared row by row: the sync leaves it out, named in a pre-flight
    /// warning, and verification lists it as not compared, whether or not the selection names
    /// it (one such table never refuses a whole run).
    NoKey,
    /// A selection was given and does not name the table.
    NotSelected,
}

impl SkipReason {
    /// True when the skipped table is a difference between the databases (the target lacks it),
    /// not a table left out on purpose.
    pub fn is_difference(self) -> bool {
        self == SkipReason::MissingInTarget
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::MissingInTarget => "missing in the target",
            SkipReason::NoKey => "no primary key and no NOT NULL unique key",
            SkipReason::NotSelected => "not among the selected tables",
        })
    }
}

/// A table of the source that a plan does not move, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkippedTable {
    /// The source table.
    pub table: TableName,
    /// Why it is not in the plan.
    pub reason: SkipReason,
}

/// Everything a sync will do, table by table in load order, with the schema diff.
#[derive(Debug, Clone)]
pub struct SyncPlan {
    /// The mode.
    pub mode: SyncMode,
    /// The tables to sync, in load order (parents first).
    pub tables: Vec<TablePlan>,
    /// The source's tables the sync does not move, in the source's order, with why: missing
    /// in the target (a difference), without a key, or not selected.
    pub skipped: Vec<SkippedTable>,
    /// Differences between the source and target tables.
    pub diff: SchemaDiff,
    /// Loaders keep an undo log, so that a run can be rolled back row by row.
    pub undo: bool,
    /// How the target's foreign keys are checked, as decided for pre-flight.
    pub foreign_keys: CheckOutcome,
    /// Key ranges asked for per large table (1: none split; see
    /// [`with_key_ranges`](Self::with_key_ranges)).
    pub range_readers: usize,
    /// The target sequences of the synced tables and the source sequences whose values they
    /// take after the load (see [`with_sequences`](Self::with_sequences)); empty: the sync
    /// leaves sequences alone.
    pub sequences: Vec<crate::catalog::SequencePair>,
    /// What the sync does about the target's triggers, for pre-flight (see
    /// [`with_triggers`](Self::with_triggers)); `None`: not looked at.
    pub triggers: Option<CheckOutcome>,
}

impl SyncPlan {
    /// Plans a sync of `selection` (every source table when `None`) from `source` into
    /// `target`. Errors name the table: not in the source, no watermark column, a foreign-key
    /// cycle that cannot be broken. Tables missing or
    /// incompatible in the target are recorded in the diff, and the [`SchemaCheck`] pre-flight
    /// refuses them. Source tables that are not moved are listed in
    /// [`skipped`](Self::skipped) with the reason: missing in the target, no key (selected or
    /// not), not selected.
    pub fn build(source: &Catalog, target: &Catalog, selection: Option<&[TableName]>, mode: SyncMode) -> Result<Self> {
        let chosen: Vec<&Table> = match selection {
            None => source.tables.iter().collect(),
            Some(names) => names
                .iter()
                .map(|name| {
                    source.table(name).ok_or_else(|| Error::Schema(format!("table `{name}` is not in the source")))
                })
                .collect::<Result<_>>()?,
        };
        let mut skipped: Vec<SkippedTable> = source
            .tables
            .iter()
            .filter(|t| !chosen.iter().any(|c| c.name == t.name))
            .map(|t| SkippedTable { table: t.name.clone(), reason: SkipReason::NotSelected })
            .collect();
        let mut diff = SchemaDiff::default();
        let mut pairs = Vec::new();
        for table in chosen {
            let theirs = target.table(&table.name);
            let skip = |reason| SkippedTable { table: table.name.clone(), reason };
            if theirs.is_none() {
                skipped.push(skip(SkipReason::MissingInTarget));
            } else if table.row_key().is_none() {
                // Left out, and said so (pre-flight, verification): the other tables still sync.
                skipped.push(skip(SkipReason::NoKey));
                continue;
            }
            diff.add_table(table, theirs);
            if let Some(theirs) = theirs {
                pairs.push((table.clone(), theirs.clone()));
            }
        }
        let targets: Vec<Table> = pairs.iter().map(|(_, t)| t.clone()).collect();
        let order = LoadOrder::plan(&targets)?;
        let mut tables = Vec::with_capacity(pairs.len());
        for step in order.steps {
            let Some((source, target)) = pairs.iter().find(|(_, t)| t.name == step.table).cloned() else { continue };
            let key = source
                .row_key()
                .ok_or_else(|| {
                    Error::Schema(format!(
                        "table `{}` has no primary key and no NOT NULL unique key; DMF needs one to read it in \
                         resumable order and to compare rows",
                        source.name
                    ))
                })?
                .to_vec();
            if let SyncMode::Incremental { column, .. } = &mode {
                if source.column(column).is_none() {
                    return Err(Error::Schema(format!(
                        "table `{}` has no column `{column}` for incremental mode; leave it out of the selection or \
                         sync it in another mode",
                        source.name
                    )));
                }
            }
            let columns = source
                .writable_columns()
                .filter(|c| target.column(&c.name).is_some_and(|t| !t.generated))
                .map(|c| c.name.clone())
                .collect();
            let deferred_names: BTreeSet<&str> =
                step.deferred.iter().chain(&step.unordered).map(|fk| fk.name.as_str()).collect();
            let after = target
                .foreign_keys
                .iter()
                .filter(|fk| fk.enforced && !deferred_names.contains(fk.name.as_str()))
                .filter_map(|fk| targets.iter().find(|t| fk.referenced_table.matches(&t.name)))
                .filter(|parent| parent.name != target.name)
                .map(|parent| parent.name.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            tables.push(TablePlan {
                source,
                target,
                columns,
                key,
                deferred: step.deferred,
                unordered: step.unordered,
                after,
                trust_foreign_keys: false,
                ranges: Vec::new(),
            });
        }
        let foreign_keys = CheckOutcome::passed(FK_CHECK, "per row, by the target");
        Ok(Self {
            mode,
            tables,
            skipped,
            diff,
            undo: false,
            foreign_keys,
            range_readers: 1,
            sequences: Vec::new(),
            triggers: None,
        })
    }

    /// Syncs sequences too: each target sequence that fills a column of a synced table
    /// (`target`, as [`Database::sequences`](super::Database::sequences) lists them) takes the
    /// value of its source sequence (`source`) once every row is written, paired by
    /// [`pair_sequences`](crate::catalog::pair_sequences). The run records the target's values
    /// first, and rolling it back sets them back.
    pub fn with_sequences(mut self, source: &[crate::catalog::Sequence], target: &[crate::catalog::Sequence]) -> Self {
        let tables: Vec<(TableName, TableName)> =
            self.tables.iter().map(|t| (t.source.name.clone(), t.target.name.clone())).collect();
        self.sequences = crate::catalog::pair_sequences(&tables, source, target);
        self
    }

    /// Decides what the sync does about the target's `triggers` on the planned tables
    /// ([`TriggerPolicy`](super::TriggerPolicy)): with [`TriggerPolicy::skip`], tables whose triggers fire on the
    /// mode's writes are written by sessions that skip them, where `policy.trust` says the
    /// target can (and their foreign keys proven after the load); the pre-flight line names
    /// every trigger that fires, with its operations and, when skipping was asked for, why it
    /// fires even so. Call after [`with_foreign_key_checks`](Self::with_foreign_key_checks).
    pub fn with_triggers(mut self, triggers: &[crate::catalog::Trigger], policy: TriggerPolicy<'_>) -> Self {
        let trusted_before: Vec<bool> = self.tables.iter().map(|t| t.trust_foreign_keys).collect();
        let outcome = super::triggers::decide(&mut self, triggers, policy);
        let newly: Vec<String> = self
            .tables
            .iter()
            .zip(trusted_before)
            .filter(|(t, before)| t.trust_foreign_keys && !before)
            .map(|(t, _)| t.target.name.to_string())
            .collect();
        if !newly.is_empty() {
            self.foreign_keys.detail.push_str(&format!(
                "; without per-row checks for {} (--skip-target-triggers: sessions that skip triggers skip them too), \
                 proven by set-based queries after the load",
                newly.join(", ")
            ));
        }
        self.triggers = Some(outcome);
        self
    }

    /// The pre-flight line of [`with_triggers`](Self::with_triggers), if it was called.
    pub fn trigger_check(&self) -> Option<PlannedCheck> {
        self.triggers.clone().map(PlannedCheck)
    }

    /// Keeps (or not) an undo log of every row the sync changes.
    pub fn with_undo(mut self, undo: bool) -> Self {
        self.undo = undo;
        self
    }

    /// True when the sync has a [catch-up pass](super::CATCH_UP) (`full`, `upsert` and `diff`
    /// modes: they read every row again at the next run, so a row still deferred is never lost).
    pub fn catches_up(&self) -> bool {
        !matches!(self.mode, SyncMode::Incremental { .. })
    }

    /// Decides how the target's foreign keys are checked: in a `full` sync with
    /// [`ForeignKeyChecks::Auto`] and a target that allows it, the loading sessions skip per-row
    /// checks (except for the tables `trust` keeps per row) and the sync proves every foreign
    /// key afterwards; per row otherwise. The decision and its reason go to pre-flight.
    ///
    /// Tables holding the foreign keys of a NOT NULL cycle ([`TablePlan::unordered`]) skip
    /// per-row checks in every mode when `trust` allows it (no insert order exists for them);
    /// when it does not, the pre-flight line fails, naming the cycle and why, and the run is
    /// refused before it writes. Planning, verification and dry runs are not affected.
    pub fn with_foreign_key_checks(mut self, checks: ForeignKeyChecks, trust: Option<&ForeignKeyTrust>) -> Self {
        let why_not = match (&self.mode, checks, trust) {
            (SyncMode::Full, ForeignKeyChecks::Auto, Some(trust)) if trust.allowed => None,
            (SyncMode::Full, ForeignKeyChecks::Auto, Some(trust)) => Some(trust.reason.clone()),
            (SyncMode::Full, ForeignKeyChecks::PerRow, _) => Some("--fk-checks per-row was asked for".to_owned()),
            (SyncMode::Full, ForeignKeyChecks::Auto, None) => Some("the target was not asked".to_owned()),
            (mode, _, _) => Some(format!("the fast path is for full syncs, this one is {mode}")),
        };
        let kept = trust.map(|t| t.per_row_tables.as_slice()).unwrap_or_default();
        let mut detail = match why_not {
            Some(reason) => {
                for table in &mut self.tables {
                    table.trust_foreign_keys = false;
                }
                format!("per row, because {reason}")
            }
            None => {
                for table in &mut self.tables {
                    table.trust_foreign_keys = !kept.iter().any(|(name, _)| *name == table.target.name);
                }
                let mut detail = "deferred to a set-based proof".to_owned();
                if let Some(trust) = trust {
                    detail.push_str(&format!(" ({})", trust.reason));
                }
                for (table, why) in kept {
                    detail.push_str(&format!("; {table} per row, because {why}"));
                }
                detail
            }
        };
        let cycles: Vec<String> = self
            .tables
            .iter()
            .flat_map(|t| {
                t.unordered.iter().map(move |fk| format!("{}.{} -> {}", t.target.name, fk.name, fk.referenced_table))
            })
            .collect();
        if cycles.is_empty() {
            self.foreign_keys = CheckOutcome::passed(FK_CHECK, detail);
            return self;
        }
        // A NOT NULL cycle: its first table loads before the rows it references.
        let refused = match trust {
            None => Some("the target was not asked whether loads may skip per-row checks".to_owned()),
            Some(trust) if !trust.allowed => Some(trust.reason.clone()),
            Some(_) => self
                .tables
                .iter()
                .filter(|t| !t.unordered.is_empty())
                .find_map(|t| kept.iter().find(|(name, _)| *name == t.target.name))
                .map(|(table, why)| format!("{table} must keep per-row checks ({why})")),
        };
        match refused {
            None => {
                for table in self.tables.iter_mut().filter(|t| !t.unordered.is_empty()) {
                    table.trust_foreign_keys = true;
                }
                detail.push_str(&format!(
                    "; without per-row checks for the NOT NULL foreign-key cycle at {}, proven by set-based queries \
                     after the load",
                    cycles.join(", ")
                ));
                self.foreign_keys = CheckOutcome::passed(FK_CHECK, detail);
            }
            Some(why) => {
                self.foreign_keys = CheckOutcome::failed(
                    FK_CHECK,
                    format!(
                        "foreign keys form a cycle whose columns are all NOT NULL ({}): no insert order satisfies \
                         them row by row, so its tables can only be written by sessions that skip per-row checks, \
                         and here they cannot: {why}. Make one of these columns nullable, or run as a user the \
                         target lets skip them (PostgreSQL: superuser or session_replication_role; SQLite always)",
                        cycles.join(", ")
                    ),
                );
            }
        }
        self
    }

    /// The pre-flight line saying how foreign keys are checked ([`FK_CHECK`]).
    pub fn foreign_key_check(&self) -> PlannedCheck {
        PlannedCheck(self.foreign_keys.clone())
    }

    /// True when some table is loaded without per-row foreign-key checks.
    pub fn trusts_foreign_keys(&self) -> bool {
        self.tables.iter().any(|t| t.trust_foreign_keys)
    }

    /// The target tables in delete order (referencing tables first).
    pub fn delete_order(&self) -> Vec<TableName> {
        self.tables.iter().rev().map(|t| t.target.name.clone()).collect()
    }

    /// The pre-flight check refusing incompatible schemas.
    pub fn schema_check(&self) -> SchemaCheck {
        let no_key = self.skipped.iter().filter(|s| s.reason == SkipReason::NoKey).map(|s| s.table.clone()).collect();
        SchemaCheck { diff: self.diff.clone(), tables: self.tables.len(), no_key }
    }
}

/// Pre-flight: reports a decision taken while planning (how foreign keys are checked).
#[derive(Debug, Clone)]
pub struct PlannedCheck(CheckOutcome);

#[async_trait]
impl PreflightCheck for PlannedCheck {
    async fn check(&self) -> Vec<CheckOutcome> {
        vec![self.0.clone()]
    }
}

/// Pre-flight: the source and target tables are compatible (see [`SchemaDiff`]).
#[derive(Debug, Clone)]
pub struct SchemaCheck {
    diff: SchemaDiff,
    tables: usize,
    /// Tables left out because they have no key: a warning.
    no_key: Vec<TableName>,
}

#[async_trait]
impl PreflightCheck for SchemaCheck {
    async fn check(&self) -> Vec<CheckOutcome> {
        vec![self.outcome()]
    }
}

impl SchemaCheck {
    fn outcome(&self) -> CheckOutcome {
        let name = "schema consistency";
        if self.diff.is_compatible() {
            let mut detail = match self.diff.items.len() {
                0 => format!("{} tables match", self.tables),
                n => format!("{} tables, {n} compatible differences: {}", self.tables, one_line(&self.diff)),
            };
            if self.no_key.is_empty() {
                return CheckOutcome::passed(name, detail);
            }
            let names: Vec<String> = self.no_key.iter().map(ToString::to_string).collect();
            detail.push_str(&format!(
                "; not synced, for want of a primary key or NOT NULL unique key: {}",
                names.join(", ")
            ));
            CheckOutcome::warning(name, detail)
        } else {
            let problems: Vec<String> = self
                .diff
                .incompatibilities()
                .map(|i| match &i.column {
                    Some(column) => format!("{}.{column}: {}", i.table, i.detail),
                    None => format!("{}: {}", i.table, i.detail),
                })
                .collect();
            CheckOutcome::failed(name, problems.join("; "))
        }
    }
}

fn one_line(diff: &SchemaDiff) -> String {
    diff.items
        .iter()
        .map(|i| match &i.column {
            Some(column) => format!("{}.{column}: {}", i.table, i.detail),
            None => format!("{}: {}", i.table, i.detail),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::DataType;

    fn table(name: &str, fks: Vec<ForeignKey>) -> Table {
        Table {
            name: TableName::new(Some("public"), name),
            columns: vec![
                Column::new("id", DataType::Int64, "bigint").not_null(),
                Column::new("parent", DataType::Int64, "bigint"),
                Column::new("updated_at", DataType::Timestamp, "timestamp"),
            ],
            primary_key: vec!["id".into()],
            unique_keys: vec![],
            foreign_keys: fks,
        }
    }

    fn fk(to: &str) -> ForeignKey {
        ForeignKey {
            name: format!("to_{to}"),
            columns: vec!["parent".into()],
            referenced_table: TableName::new(Some("public"), to),
            referenced_columns: vec!["id".into()],
            enforced: true,
        }
    }

    fn catalog(tables: Vec<Table>) -> Catalog {
        Catalog { tables }
    }

    #[test]
    fn plans_in_fk_order_with_dependencies_and_deferred_self_references() {
        let source = catalog(vec![table("orders", vec![fk("customers")]), table("customers", vec![fk("customers")])]);
        let mut unqualified = source.clone();
        for t in &mut unqualified.tables {
            t.name.schema = None;
        }
        // The source has no schemas (SQLite), the target has (PostgreSQL): names still match.
        let plan = SyncPlan::build(&unqualified, &source, None, SyncMode::Full).unwrap();
        let names: Vec<String> = plan.tables.iter().map(|t| t.migration_name().to_string()).collect();
        assert_eq!(names, ["public.customers", "public.orders"]);
        assert_eq!(plan.tables[0].deferred_columns().into_iter().collect::<Vec<_>>(), ["parent"]);
        assert!(plan.tables[0].after.is_empty());
        assert_eq!(plan.tables[1].after, vec![TableName::new(Some("public"), "customers")]);
        assert_eq!(plan.tables[0].fixup_columns(), ["id", "parent"]);
        assert!(plan.diff.is_compatible());
    }

    #[test]
    fn a_child_on_the_fast_path_waits_for_its_parents_only_where_loaders_take_turns() {
        let source = catalog(vec![table("orders", vec![fk("customers")]), table("customers", vec![])]);
        let plan = SyncPlan::build(&source, &source, None, SyncMode::Full).unwrap();
        let customers = [TableName::new(Some("public"), "customers")];
        let per_row = plan.clone().with_foreign_key_checks(ForeignKeyChecks::PerRow, None);
        let trust = ForeignKeyTrust {
            allowed: true,
            reason: "allowed".into(),
            per_row_tables: vec![],
            silences_triggers: true,
        };
        let fast = plan.with_foreign_key_checks(ForeignKeyChecks::Auto, Some(&trust));
        assert_eq!(per_row.tables[1].waits_for(true), customers, "per row: parents first");
        assert_eq!(per_row.tables[1].waits_for(false), customers);
        assert!(fast.tables[1].trust_foreign_keys);
        assert!(fast.tables[1].waits_for(true).is_empty(), "fast path, parallel writes: beside its parent");
        assert_eq!(fast.tables[1].waits_for(false), customers, "fast path, one writer: after its parent");
        assert!(fast.tables[0].waits_for(true).is_empty() && fast.tables[0].waits_for(false).is_empty());
    }

    #[test]
    fn a_table_without_a_key_is_left_out_with_a_warning_even_when_named() {
        let mut keyless = table("k", vec![]);
        keyless.primary_key.clear();
        let both = catalog(vec![table("a", vec![]), keyless]);
        for selection in [None, Some(&[TableName::parse("public.a"), TableName::parse("public.k")][..])] {
            let plan = SyncPlan::build(&both, &both, selection, SyncMode::Upsert).unwrap();
            let planned: Vec<String> = plan.tables.iter().map(|t| t.source.name.to_string()).collect();
            assert_eq!(planned, ["public.a"], "{selection:?}");
            assert_eq!(plan.skipped, [SkippedTable { table: TableName::parse("public.k"), reason: SkipReason::NoKey }]);
            let outcome = plan.schema_check().outcome();
            assert_eq!(outcome.status, crate::orchestrator::CheckStatus::Warning, "{outcome:?}");
            assert!(outcome.detail.contains("not synced, for want of a primary key or NOT NULL unique key: public.k"));
        }
    }

    #[test]
    fn refusals_name_the_table() {
        let source = catalog(vec![table("a", vec![])]);
        let missing = SyncPlan::build(&source, &source, Some(&[TableName::parse("public.nope")]), SyncMode::Full);
        assert_eq!(missing.unwrap_err().to_string(), "schema: table `public.nope` is not in the source");

        let mode = SyncMode::Incremental { column: "version".into(), propagate_deletes: false };
        let no_column = SyncPlan::build(&source, &source, None, mode);
        assert!(no_column.unwrap_err().to_string().contains("table `public.a` has no column `version`"));
    }

    #[tokio::test]
    async fn tables_left_out_are_listed_with_the_reason() {
        let mut keyless = table("log", vec![]);
        keyless.primary_key.clear();
        let source = catalog(vec![table("a", vec![]), keyless.clone(), table("gone", vec![])]);
        let target = catalog(vec![table("a", vec![]), keyless]);
        let skipped = |plan: &SyncPlan| -> Vec<(String, SkipReason)> {
            plan.skipped.iter().map(|s| (s.table.to_string(), s.reason)).collect()
        };
        let everything = SyncPlan::build(&source, &target, None, SyncMode::Upsert).unwrap();
        assert_eq!(everything.tables.len(), 1);
        assert_eq!(
            skipped(&everything),
            [("public.log".to_owned(), SkipReason::NoKey), ("public.gone".to_owned(), SkipReason::MissingInTarget)]
        );
        assert!(SkipReason::MissingInTarget.is_difference() && !SkipReason::NoKey.is_difference());
        let outcome = everything.schema_check().check().await.remove(0);
        assert_eq!(outcome.status, crate::CheckStatus::Failed, "the missing table still stops a sync");

        let selected = SyncPlan::build(&source, &target, Some(&[TableName::parse("a")]), SyncMode::Upsert).unwrap();
        assert_eq!(
            skipped(&selected),
            [("public.log".to_owned(), SkipReason::NotSelected), ("public.gone".to_owned(), SkipReason::NotSelected)]
        );
        let source = catalog(vec![table("a", vec![]), target.tables[1].clone()]);
        let outcome = SyncPlan::build(&source, &target, None, SyncMode::Upsert).unwrap().schema_check().check().await;
        assert_eq!(outcome[0].status, crate::CheckStatus::Warning);
        assert_eq!(
            outcome[0].detail,
            "1 tables match; not synced, for want of a primary key or NOT NULL unique key: public.log"
        );
    }

    #[tokio::test]
    async fn a_table_missing_in_the_target_fails_the_schema_check() {
        let source = catalog(vec![table("a", vec![]), table("b", vec![])]);
        let target = catalog(vec![table("a", vec![])]);
        let plan = SyncPlan::build(&source, &target, None, SyncMode::Full).unwrap();
        assert_eq!(plan.tables.len(), 1);
        let outcome = plan.schema_check().check().await.remove(0);
        assert_eq!(outcome.status, crate::CheckStatus::Failed);
        assert_eq!(outcome.detail, "public.b: missing in the target (a sync never creates tables)");
    }
}
