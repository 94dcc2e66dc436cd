//! Key ranges: one large table read by several readers at once, each range a resumable unit.
//!
//! A table split into `N` ranges is loaded by `N` migrations named `TABLE [range i/N]`, each
//! reading the keys of its [`KeyRange`] in key order with a checkpoint of its own (checkpoints
//! are keyed by migration name). The ranges are contiguous and cover the whole key space: the
//! first has no lower bound and the last no upper bound, so rows inserted past the keys seen
//! when the table was split are read by the last range.
//!
//! A range's bounds are part of its checkpoints' [scope](crate::Extractor::scope): a checkpoint
//! is never read against other bounds. When a run resumes an interrupted split, it reads the
//! ranges back from those checkpoints ([`SyncPlan::resume_key_ranges`]) instead of splitting
//! again, so a source that changed in between cannot move a boundary under a half-read range.
//!
//! Each range is an independent unit: a later multi-process step can let workers claim ranges
//! of one run by migration name (for example one `SELECT … FOR UPDATE SKIP LOCKED` on the
//! range's checkpoint row), with no change to how a range is read or resumed.

use std::cmp::Ordering;
use std::num::NonZeroUsize;

use super::{Database, ExtractSpec, ReadOrder, SyncMode, SyncPlan, TablePlan};
use crate::catalog::{Column, DataType, TableName};
use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::names::MigrationName;
use crate::orchestrator::{RunRecord, RunStatus, RunStore};
use crate::pipeline::Extractor;
use crate::value::Value;

/// A contiguous slice of a table's key space, on its key columns in key order: the keys
/// greater than `after` and at most `up_to` (compared as a row value, text in byte order, as
/// every DMF extractor reads).
///
/// ```
/// use dmf_core::Value;
/// use dmf_core::sync::KeyRange;
/// let ranges = KeyRange::split_integers(1, 100, std::num::NonZeroUsize::new(4).unwrap());
/// assert_eq!(ranges.len(), 4);
/// assert_eq!(ranges[0].after, None);
/// assert_eq!(ranges[0].up_to, Some(vec![Value::Int(25)]));
/// assert_eq!(ranges[1].after, Some(vec![Value::Int(25)]));
/// assert_eq!(ranges[3].up_to, None, "rows past the maximum belong to the last range");
/// assert!(ranges[2].contains(&[Value::Int(75)]) && !ranges[2].contains(&[Value::Int(76)]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeyRange {
    /// The exclusive lower bound (`None`: from the first key).
    pub after: Option<Vec<Value>>,
    /// The inclusive upper bound (`None`: to the last key).
    pub up_to: Option<Vec<Value>>,
}

/// Prefix of the scope a ranged extractor stores its checkpoints under.
const SCOPE_PREFIX: &str = "range:";

impl KeyRange {
    /// The whole key space.
    pub fn all() -> Self {
        Self::default()
    }

    /// True for the whole key space.
    pub fn is_all(&self) -> bool {
        self.after.is_none() && self.up_to.is_none()
    }

    /// The ranges ending at `boundaries` (each the last key of a range, in key order), then
    /// one more from the last boundary on: `boundaries.len() + 1` ranges, the first without a
    /// lower bound, the last without an upper bound. A boundary not greater than the one
    /// before it is dropped (a sample can repeat a key).
    pub fn between(boundaries: Vec<Vec<Value>>) -> Vec<KeyRange> {
        let mut ranges = Vec::with_capacity(boundaries.len() + 1);
        let mut after: Option<Vec<Value>> = None;
        for boundary in boundaries {
            if after.as_ref().is_some_and(|a| cmp_keys(&boundary, a) != Ordering::Greater) {
                continue;
            }
            ranges.push(KeyRange { after: after.clone(), up_to: Some(boundary.clone()) });
            after = Some(boundary);
        }
        ranges.push(KeyRange { after, up_to: None });
        ranges
    }

    /// Splits the integer keys `min..=max` into `parts` ranges of equal width (fewer when
    /// there are fewer keys than parts); one range when `min > max` (an empty table).
    pub fn split_integers(min: i64, max: i64, parts: NonZeroUsize) -> Vec<KeyRange> {
        if min > max {
            return vec![KeyRange::all()];
        }
        let span = i128::from(max) - i128::from(min) + 1;
        let parts = i128::try_from(parts.get()).unwrap_or(i128::MAX).min(span);
        let boundaries = (1..parts)
            .filter_map(|i| i64::try_from(i128::from(min) + span * i / parts - 1).ok())
            .map(|boundary| vec![Value::Int(boundary)])
            .collect();
        KeyRange::between(boundaries)
    }

    /// True when `key` (the key columns' values, in key order) is in the range.
    pub fn contains(&self, key: &[Value]) -> bool {
        self.after.as_deref().is_none_or(|after| cmp_keys(key, after) == Ordering::Greater)
            && self.up_to.as_deref().is_none_or(|up_to| cmp_keys(key, up_to) != Ordering::Greater)
    }

    /// Where a reader of this range starts: after `resume` (the last key read) or after the
    /// range's lower bound, whichever is greater.
    pub fn start(&self, resume: Option<Vec<Value>>) -> Option<Vec<Value>> {
        match (resume, &self.after) {
            (Some(resume), Some(after)) if cmp_keys(&resume, after) != Ordering::Greater => Some(after.clone()),
            (Some(resume), _) => Some(resume),
            (None, after) => after.clone(),
        }
    }

    /// The [scope](crate::Extractor::scope) of checkpoints written while reading this range:
    /// `range:` and the bounds as JSON; `None` for the whole key space.
    pub fn scope(&self) -> Option<String> {
        if self.is_all() {
            return None;
        }
        // Serialising values to JSON cannot fail (no map keys, no non-string keys).
        serde_json::to_string(self).ok().map(|json| format!("{SCOPE_PREFIX}{json}"))
    }

    /// The range a [`scope`](Self::scope) names (`None` for any other scope).
    pub fn from_scope(scope: &str) -> Option<KeyRange> {
        // Alone, or after a read order's scope (`…;range:…`, see `ExtractSpec::scope`).
        let json = scope.strip_prefix(SCOPE_PREFIX).or_else(|| scope.split_once(";range:").map(|(_, json)| json))?;
        serde_json::from_str(json).ok()
    }
}

impl std::fmt::Display for KeyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = |values: &[Value]| values.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        match &self.after {
            Some(after) => write!(f, "({}", key(after))?,
            None => f.write_str("(start")?,
        }
        match &self.up_to {
            Some(up_to) => write!(f, " .. {}]", key(up_to)),
            None => f.write_str(" .. end)"),
        }
    }
}

/// Compares two keys column by column, as [`Value::cmp_key`] does.
pub(crate) fn cmp_keys(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.cmp_key(y) {
            Ordering::Equal => {}
            unequal => return unequal,
        }
    }
    a.len().cmp(&b.len())
}

/// The key column of `spec` when it is a single integer column (split by its minimum and
/// maximum; other keys are split from a sample).
pub fn single_integer_key(spec: &ExtractSpec) -> Option<&Column> {
    let [key] = spec.key.as_slice() else { return None };
    spec.columns
        .iter()
        .find(|c| &c.name == key)
        .filter(|c| matches!(c.data_type, DataType::Int16 | DataType::Int32 | DataType::Int64))
}

/// The migration loading range `index` (from 1) of `count` of `table`: `TABLE [range i/N]`.
pub fn range_migration_name(table: &TableName, index: usize, count: usize) -> MigrationName {
    MigrationName::new(format!("{table} [range {index}/{count}]"))
}

/// The table, range index and range count of a name made by [`range_migration_name`].
pub fn parse_range_migration_name(name: &str) -> Option<(&str, usize, usize)> {
    let (table, rest) = name.strip_suffix(']')?.rsplit_once(" [range ")?;
    let (index, count) = rest.split_once('/')?;
    Some((table, index.parse().ok()?, count.parse().ok()?))
}

/// How [`SyncPlan::with_key_ranges`] splits tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeReaders {
    /// Ranges per split table (1: no table is split).
    pub readers: NonZeroUsize,
    /// Tables with fewer rows (as the source estimates them) are not split.
    pub min_rows: u64,
}

impl RangeReaders {
    /// `readers` ranges for tables of at least `readers × batch_size × 10` rows, so that each
    /// range has at least ten batches to read.
    pub fn new(readers: NonZeroUsize, batch_size: NonZeroUsize) -> Self {
        let min_rows = (readers.get() as u64).saturating_mul(batch_size.get() as u64).saturating_mul(10);
        Self { readers, min_rows }
    }

    /// Splits tables of at least `rows` rows.
    pub fn min_rows(mut self, rows: u64) -> Self {
        self.min_rows = rows;
        self
    }
}

impl SyncPlan {
    /// Splits each large table into `split.readers` key ranges read by as many migrations
    /// (`TABLE [range i/N]`), which the orchestrator runs at the same time as other
    /// migrations, up to its concurrency. Only in `full`, `upsert` and `diff` modes (an
    /// incremental sync reads in watermark order, not key order), only tables the source
    /// estimates at `split.min_rows` rows or more (a table whose size is unknown, such as a
    /// PostgreSQL table never analysed, is split), and only when the source finds as many
    /// ranges ([`Database::key_ranges`]). Reads the source; writes nothing.
    pub async fn with_key_ranges<S: Database>(mut self, source: &S, split: RangeReaders) -> Result<Self> {
        self.range_readers = split.readers.get();
        if split.readers.get() < 2 || matches!(self.mode, SyncMode::Incremental { .. }) {
            return Ok(self);
        }
        for table in &mut self.tables {
            table.ranges.clear();
            let spec = table.extract_spec(&table.key, ReadOrder::Key, false);
            let mut extractor = source.extractor(spec.clone());
            let estimate = match extractor.estimate(None).await {
                Ok(estimate) => estimate,
                Err(error) => {
                    tracing::debug!(table = %table.source.name, error = %error.chain(), "no row estimate");
                    None
                }
            };
            drop(extractor);
            if estimate.is_some_and(|rows| rows < split.min_rows) {
                continue;
            }
            let ranges = source.key_ranges(&spec, split.readers).await?;
            if ranges.len() == split.readers.get() {
                tracing::info!(table = %table.source.name, ranges = ranges.len(), "table split into key ranges");
                table.ranges = ranges;
            } else {
                tracing::debug!(
                    table = %table.source.name, found = ranges.len(),
                    "too few distinct keys to split the table; one reader"
                );
            }
        }
        Ok(self)
    }

    /// The plan, split as the last run that loaded each table split it when that run did not
    /// complete, so that resuming it runs the same migrations: a table it loaded in one piece
    /// stays in one piece; a table it read in key ranges (`TABLE [range i/N]`) is read in the
    /// ranges stored with their checkpoints (ranges that had not started get the gaps between
    /// them), whatever [`with_key_ranges`](Self::with_key_ranges) found now. Completed ranges
    /// keep their names, so the orchestrator skips them; interrupted ones resume from their
    /// checkpoints. A resumed run asked for another number of readers (another `--jobs`,
    /// another machine) therefore neither loads rows twice nor loses any. Tables that run did
    /// not load keep the ranges planned.
    pub async fn resume_key_ranges(mut self, store: &dyn RunStore) -> Result<Self> {
        if matches!(self.mode, SyncMode::Incremental { .. }) {
            return Ok(self);
        }
        let recent = store.runs(RECENT_RUNS).await?;
        for table in &mut self.tables {
            let Some(count) = unfinished_split(&recent, table) else { continue };
            if count < 2 {
                if table.ranges.len() > 1 {
                    tracing::info!(table = %table.target.name, "resuming its load in one piece, as it started");
                    table.ranges.clear();
                }
                continue;
            }
            let mut stored = Vec::with_capacity(count);
            for index in 1..=count {
                let name = range_migration_name(&table.target.name, index, count);
                stored.push(store.checkpoint(&name).await?.as_ref().and_then(range_of));
            }
            if stored.iter().all(Option::is_none) {
                // No range committed a batch: nothing of the table was loaded.
                continue;
            }
            let planned = (table.ranges.len() == count).then_some(table.ranges.as_slice());
            match resume_ranges(&stored, planned) {
                Some(ranges) => {
                    tracing::info!(table = %table.target.name, ranges = count, "resuming the key ranges of an unfinished run");
                    table.ranges = ranges;
                }
                None => tracing::warn!(
                    table = %table.target.name,
                    "the stored key ranges do not fit together; ranges whose bounds changed start over"
                ),
            }
        }
        Ok(self)
    }
}

/// How many recent runs [`SyncPlan::resume_key_ranges`] looks through for the last load of a
/// table.
const RECENT_RUNS: usize = 50;

/// In how many key ranges (1: in one piece) the most recent of `runs` (newest first) that
/// loaded `table` read it, when that run did not complete; `None` when it completed or was
/// rolled back, or when none of them loaded the table.
fn unfinished_split(runs: &[RunRecord], table: &TablePlan) -> Option<usize> {
    let whole = table.migration_name();
    let name = table.target.name.to_string();
    let (run, count) = runs.iter().find_map(|run| {
        let count = run.plan.iter().find_map(|migration| {
            if *migration == whole {
                return Some(1);
            }
            parse_range_migration_name(migration.as_str())
                .filter(|(split, _, _)| *split == name)
                .map(|(_, _, count)| count)
        })?;
        Some((run, count))
    })?;
    matches!(run.status, RunStatus::Running | RunStatus::Failed | RunStatus::Abandoned).then_some(count)
}

/// The range a stored checkpoint was written in (the whole key space for an unscoped one).
fn range_of(checkpoint: &Checkpoint) -> Option<KeyRange> {
    match checkpoint.unscoped().0 {
        Some(scope) => KeyRange::from_scope(&scope),
        None => Some(KeyRange::all()),
    }
}

/// The ranges of a resumed split: each stored range as it is, and each run of ranges without a
/// checkpoint given the gap between its stored neighbours, cut at the `planned` boundaries
/// moved into the gap (empty ranges where they fall outside it). `None` when the stored ranges
/// do not follow each other (they came from different splits).
pub(crate) fn resume_ranges(stored: &[Option<KeyRange>], planned: Option<&[KeyRange]>) -> Option<Vec<KeyRange>> {
    let count = stored.len();
    let mut ranges: Vec<KeyRange> = Vec::with_capacity(count);
    let mut lower: Option<Vec<Value>> = None;
    let mut index = 0;
    while index < count {
        if let Some(range) = &stored[index] {
            let last = index + 1 == count;
            let ordered = match (&range.after, &range.up_to) {
                (Some(after), Some(up_to)) => cmp_keys(after, up_to) != Ordering::Greater,
                _ => true,
            };
            if range.after != lower || range.up_to.is_none() != last || !ordered {
                return None;
            }
            lower = range.up_to.clone();
            ranges.push(range.clone());
            index += 1;
            continue;
        }
        let mut end = index;
        while end + 1 < count && stored[end + 1].is_none() {
            end += 1;
        }
        let upper = match stored.get(end + 1) {
            Some(Some(next)) => Some(next.after.clone()?),
            _ => None,
        };
        if let (Some(low), Some(high)) = (&lower, &upper) {
            if cmp_keys(low, high) == Ordering::Greater {
                return None;
            }
        }
        for gap in index..=end {
            let after = if gap == index { lower.clone() } else { ranges.last().and_then(|r| r.up_to.clone()) };
            let up_to = if gap == end {
                upper.clone()
            } else {
                let point = planned.and_then(|p| p.get(gap)).and_then(|r| r.up_to.clone());
                let point = point.or_else(|| upper.clone()).or_else(|| lower.clone())?;
                let point = clamp(point, lower.as_deref(), upper.as_deref());
                // Never below the range's own start.
                Some(match &after {
                    Some(after) if cmp_keys(&point, after) == Ordering::Less => after.clone(),
                    _ => point,
                })
            };
            ranges.push(KeyRange { after, up_to });
        }
        lower = upper;
        index = end + 1;
    }
    Some(ranges)
}

fn clamp(point: Vec<Value>, lower: Option<&[Value]>, upper: Option<&[Value]>) -> Vec<Value> {
    if let Some(lower) = lower.filter(|l| cmp_keys(&point, l) == Ordering::Less) {
        return lower.to_vec();
    }
    if let Some(upper) = upper.filter(|u| cmp_keys(&point, u) == Ordering::Greater) {
        return upper.to_vec();
    }
    point
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: i64) -> Option<Vec<Value>> {
        Some(vec![Value::Int(n)])
    }

    fn range(after: Option<i64>, up_to: Option<i64>) -> KeyRange {
        KeyRange { after: after.and_then(key), up_to: up_to.and_then(key) }
    }

    fn parts(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    #[test]
    fn integer_splits_cover_every_key_once() {
        for (min, max, n) in [(1, 100, 4), (-5, 5, 3), (7, 7, 3), (0, 1, 4), (i64::MIN, i64::MAX, 5)] {
            let ranges = KeyRange::split_integers(min, max, parts(n));
            assert_eq!(ranges.first().unwrap().after, None);
            assert_eq!(ranges.last().unwrap().up_to, None);
            assert!(ranges.len() <= n);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].up_to, pair[1].after, "contiguous");
            }
            for probe in [min, max, min.saturating_add(1), max.saturating_sub(1), i64::MIN, i64::MAX] {
                let holders = ranges.iter().filter(|r| r.contains(&[Value::Int(probe)])).count();
                assert_eq!(holders, 1, "key {probe} in {ranges:?}");
            }
        }
        assert_eq!(KeyRange::split_integers(1, 2, parts(4)).len(), 2, "no more ranges than keys");
        assert_eq!(KeyRange::split_integers(3, 2, parts(4)), vec![KeyRange::all()], "empty table");
        let ranges = KeyRange::split_integers(1, 10, parts(3));
        assert_eq!(ranges, vec![range(None, Some(3)), range(Some(3), Some(6)), range(Some(6), None)]);
    }

    #[test]
    fn boundaries_that_do_not_grow_are_dropped() {
        let text = |s: &str| vec![Value::Text(s.into())];
        let ranges = KeyRange::between(vec![text("b"), text("b"), text("a"), text("é")]);
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[1].after, Some(text("b")));
        assert_eq!(ranges[1].up_to, Some(text("é")));
        assert!(ranges[2].contains(&text("🦀")), "byte order: the emoji sorts after é");
    }

    #[test]
    fn a_reader_starts_after_the_greater_of_its_bound_and_its_checkpoint() {
        let r = range(Some(10), Some(20));
        assert_eq!(r.start(None), key(10));
        assert_eq!(r.start(key(15)), key(15));
        assert_eq!(r.start(key(5)), key(10));
        assert_eq!(KeyRange::all().start(key(3)), key(3));
    }

    #[test]
    fn scopes_round_trip_and_name_the_bounds() {
        let r = KeyRange { after: Some(vec![Value::Text("a\u{1f};b".into()), Value::Int(2)]), up_to: None };
        let scope = r.scope().unwrap();
        assert!(scope.starts_with("range:{"));
        assert!(!scope.contains('\u{1f}'), "the checkpoint scope separator never appears: {scope}");
        assert_eq!(KeyRange::from_scope(&scope), Some(r));
        assert_eq!(KeyRange::all().scope(), None);
        assert_eq!(KeyRange::from_scope("watermark:updated_at"), None);
    }

    #[test]
    fn a_resumed_run_splits_a_table_as_the_unfinished_run_that_loaded_it() {
        use crate::catalog::{Catalog, DataType, Table};
        use crate::names::RunId;
        let table = Table {
            name: TableName::new(Some("shop"), "orders"),
            columns: vec![Column::new("id", DataType::Int64, "bigint").not_null()],
            primary_key: vec!["id".into()],
            unique_keys: vec![],
            foreign_keys: vec![],
        };
        let catalog = Catalog { tables: vec![table.clone()] };
        let plan = SyncPlan::build(&catalog, &catalog, None, SyncMode::Full).unwrap();
        let orders = &plan.tables[0];
        let run = |status, plan: &[&str]| RunRecord {
            id: RunId(1),
            status,
            plan: plan.iter().map(|n| MigrationName::new(*n)).collect(),
            host: String::new(),
            started_at: std::time::SystemTime::UNIX_EPOCH,
            finished_at: None,
            backup: None,
            error: None,
        };
        let split =
            run(RunStatus::Failed, &["clear target tables", "shop.orders [range 1/3]", "shop.orders [range 3/3]"]);
        let whole = run(RunStatus::Running, &["shop.orders"]);
        let other = run(RunStatus::Failed, &["shop.customers [range 1/2]"]);
        assert_eq!(unfinished_split(&[other.clone(), split.clone(), whole.clone()], orders), Some(3), "newest first");
        assert_eq!(unfinished_split(&[whole, split.clone()], orders), Some(1));
        let done = run(RunStatus::Completed, &["shop.orders [range 1/2]"]);
        assert_eq!(unfinished_split(&[done, split.clone()], orders), None, "a completed load constrains nothing");
        let rolled_back = run(RunStatus::RolledBack, &["shop.orders"]);
        assert_eq!(unfinished_split(&[rolled_back], orders), None);
        assert_eq!(unfinished_split(&[other], orders), None);
    }

    #[test]
    fn range_names_round_trip() {
        let table = TableName::new(Some("shop"), "order [lines]");
        let name = range_migration_name(&table, 2, 3);
        assert_eq!(name.as_str(), "shop.order [lines] [range 2/3]");
        assert_eq!(parse_range_migration_name(name.as_str()), Some(("shop.order [lines]", 2, 3)));
        assert_eq!(parse_range_migration_name("shop.orders (deletes)"), None);
    }

    #[test]
    fn resumed_ranges_keep_stored_bounds_and_fill_gaps() {
        let planned =
            [range(None, Some(30)), range(Some(30), Some(60)), range(Some(60), Some(90)), range(Some(90), None)];
        // Every range stored: as stored, whatever was planned now.
        let stored = [Some(range(None, Some(10))), Some(range(Some(10), Some(20))), Some(range(Some(20), None))];
        assert_eq!(resume_ranges(&stored, None).unwrap(), stored.iter().flatten().cloned().collect::<Vec<_>>());
        // Ranges 2 and 3 never started: the gap (10, 95] is cut at the planned 60, moved inside.
        let stored = [Some(range(None, Some(10))), None, None, Some(range(Some(95), None))];
        assert_eq!(
            resume_ranges(&stored, Some(&planned)).unwrap(),
            vec![range(None, Some(10)), range(Some(10), Some(60)), range(Some(60), Some(95)), range(Some(95), None)]
        );
        // Planned boundaries outside the gap give empty ranges, never overlapping ones.
        let stored = [None, None, Some(range(Some(5), Some(7))), Some(range(Some(7), None))];
        assert_eq!(
            resume_ranges(&stored, Some(&planned)).unwrap(),
            vec![range(None, Some(5)), range(Some(5), Some(5)), range(Some(5), Some(7)), range(Some(7), None)]
        );
        // Without a plan, the gap goes to its last range.
        let stored = [Some(range(None, Some(10))), None, None];
        assert_eq!(
            resume_ranges(&stored, None).unwrap(),
            vec![range(None, Some(10)), range(Some(10), Some(10)), range(Some(10), None)]
        );
        // Ranges of two different splits do not fit together.
        let stored = [Some(range(None, Some(10))), Some(range(Some(12), None))];
        assert_eq!(resume_ranges(&stored, None), None);
        let stored = [Some(range(None, Some(10))), None, Some(range(Some(5), None))];
        assert_eq!(resume_ranges(&stored, None), None);
    }
}
