//! An in-memory table that is both an [`Extractor`] and a [`Loader`].

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use dmf_core::sync::KeyRange;
use dmf_core::{
    Checkpoint, Error, Extractor, LoadBatch, LoadReport, Loader, MigrationName, Position, Record, RollbackReport,
    RunId, SourceBatch, Stage, Value,
};
use futures::stream::{self, BoxStream, StreamExt};

type UniqueFn<T> = Arc<dyn Fn(&T) -> String + Send + Sync>;

/// Rows kept in insertion order and indexed by [`Record::key`], with unique constraints,
/// checkpoints and an undo log, all behind one lock so a load is atomic.
///
/// Clones are handles to the same table: keep one to inspect it while a pipeline owns another.
///
/// ```
/// use dmf_testkit::MemoryTable;
/// # #[derive(Clone, PartialEq, Debug, serde::Serialize)] struct Row { id: i64, email: String }
/// # impl dmf_core::Record for Row { fn key(&self) -> String { self.id.to_string() } }
/// let table = MemoryTable::new("customers").with_unique("email", |r: &Row| r.email.clone());
/// table.insert_rows([Row { id: 1, email: "a@x".into() }]);
/// assert_eq!(table.len(), 1);
/// ```
pub struct MemoryTable<T> {
    name: Arc<str>,
    state: Arc<Mutex<TableState<T>>>,
}

impl<T> Clone for MemoryTable<T> {
    fn clone(&self) -> Self {
        Self { name: Arc::clone(&self.name), state: Arc::clone(&self.state) }
    }
}

struct UniqueIndex<T> {
    name: String,
    value_of: UniqueFn<T>,
    keys_by_value: HashMap<String, String>,
}

struct UndoEntry<T> {
    migration: MigrationName,
    run: RunId,
    key: String,
    before: Option<T>,
}

struct TableState<T> {
    rows: BTreeMap<u64, T>,
    seq_by_key: HashMap<String, u64>,
    next_seq: u64,
    append_only: bool,
    uniques: Vec<UniqueIndex<T>>,
    checkpoints: HashMap<MigrationName, Checkpoint>,
    undo: Vec<UndoEntry<T>>,
    loads: u64,
}

/// What the table would do with one record of a batch.
enum Change<T> {
    Insert(T),
    Update { seq: u64, before: T, after: T },
    Unchanged,
}

impl<T: Record + Clone + PartialEq> MemoryTable<T> {
    /// An empty table; `name` appears in error messages.
    pub fn new(name: &str) -> Self {
        Self {
            name: Arc::from(name),
            state: Arc::new(Mutex::new(TableState {
                rows: BTreeMap::new(),
                seq_by_key: HashMap::new(),
                next_seq: 0,
                append_only: false,
                uniques: Vec::new(),
                checkpoints: HashMap::new(),
                undo: Vec::new(),
                loads: 0,
            })),
        }
    }

    /// A table that appends every loaded record without looking at keys, so a record loaded
    /// twice shows up twice (what a plain `INSERT` into a table without a key would do): the
    /// target that makes duplicates visible in tests.
    pub fn append_only(self) -> Self {
        self.lock().append_only = true;
        self
    }

    /// Adds a unique constraint: two rows with different keys may not share `value_of`. A batch
    /// breaking it fails with a data error naming the constraint, value and both keys.
    pub fn with_unique(self, name: &str, value_of: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        {
            let mut state = self.lock();
            let value_of: UniqueFn<T> = Arc::new(value_of);
            let keys_by_value = state.rows.values().map(|r| (value_of(r), r.key())).collect();
            state.uniques.push(UniqueIndex { name: name.to_owned(), value_of, keys_by_value });
        }
        self
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn lock(&self) -> MutexGuard<'_, TableState<T>> {
        // A panic while holding the lock cannot leave a half-applied batch (changes are applied
        // after all checks), so the data is still consistent: take it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Inserts rows directly (seeding a source), replacing rows with the same key.
    pub fn insert_rows(&self, rows: impl IntoIterator<Item = T>) {
        let mut state = self.lock();
        for row in rows {
            let key = row.key();
            for unique in &mut state.uniques {
                unique.keys_by_value.insert((unique.value_of)(&row), key.clone());
            }
            match state.seq_by_key.get(&key).copied() {
                Some(seq) if !state.append_only => {
                    state.rows.insert(seq, row);
                }
                _ => {
                    let seq = state.next_seq;
                    state.next_seq += 1;
                    state.rows.insert(seq, row);
                    state.seq_by_key.insert(key, seq);
                }
            }
        }
    }

    /// Changes rows in place (simulating source updates between runs).
    pub fn update_rows(&self, mut change: impl FnMut(&mut T)) {
        let mut state = self.lock();
        for row in state.rows.values_mut() {
            change(row);
        }
    }

    /// Every row, in insertion order.
    pub fn rows(&self) -> Vec<T> {
        self.lock().rows.values().cloned().collect()
    }

    /// Every row sorted by key: equal snapshots mean equal tables, whatever the load order.
    pub fn snapshot(&self) -> Vec<T> {
        let mut rows = self.rows();
        rows.sort_by_key(Record::key);
        rows
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.lock().rows.len()
    }

    /// True when the table has no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row with `key`.
    pub fn get(&self, key: &str) -> Option<T> {
        let state = self.lock();
        state.seq_by_key.get(key).and_then(|seq| state.rows.get(seq)).cloned()
    }

    /// The checkpoint stored for `migration`.
    pub fn stored_checkpoint(&self, migration: &str) -> Option<Checkpoint> {
        self.lock().checkpoints.get(&MigrationName::new(migration)).cloned()
    }

    /// Splits the table's read positions (its rows' sequence numbers, in the order it reads
    /// them) into at most `parts` contiguous ranges of equal width, the first and last open,
    /// as [`Database::key_ranges`](dmf_core::sync::Database::key_ranges) splits a key: read
    /// each with [`range`](Self::range).
    pub fn key_ranges(&self, parts: NonZeroUsize) -> Vec<KeyRange> {
        let last = self.lock().rows.keys().next_back().copied();
        match last {
            Some(last) => KeyRange::split_integers(0, i64::try_from(last).unwrap_or(i64::MAX), parts),
            None => vec![KeyRange::all()],
        }
    }

    /// An extractor of the rows whose read position (sequence number, as a one-column
    /// [`Value::Int`] key) is in `range`. Its positions are the table's, its checkpoints are
    /// scoped by the range ([`KeyRange::scope`]).
    pub fn range(&self, range: KeyRange) -> MemoryRange<T> {
        MemoryRange { table: self.clone(), range }
    }

    /// `load` calls that committed so far (empty checkpoint-only ones included).
    pub fn committed_loads(&self) -> u64 {
        self.lock().loads
    }

    fn plan_changes(&self, state: &TableState<T>, records: &[T]) -> Result<Vec<Change<T>>, Error> {
        let mut claimed: Vec<HashMap<String, String>> = vec![HashMap::new(); state.uniques.len()];
        let mut changes = Vec::with_capacity(records.len());
        for record in records {
            let key = record.key();
            for (index, unique) in state.uniques.iter().enumerate() {
                let value = (unique.value_of)(record);
                let holder = claimed[index].get(&value).or_else(|| unique.keys_by_value.get(&value));
                if let Some(holder) = holder.filter(|holder| **holder != key) {
                    return Err(Error::data(
                        Stage::Load,
                        format!(
                            "table `{}`: unique constraint `{}` violated by key {key}: value `{value}` is already held by key {holder}",
                            self.name, unique.name
                        ),
                    ));
                }
                claimed[index].insert(value, key.clone());
            }
            let existing = if state.append_only { None } else { state.seq_by_key.get(&key) };
            changes.push(match existing.and_then(|seq| state.rows.get(seq).map(|row| (*seq, row))) {
                None => Change::Insert(record.clone()),
                Some((_, row)) if row == record => Change::Unchanged,
                Some((seq, row)) => Change::Update { seq, before: row.clone(), after: record.clone() },
            });
        }
        Ok(changes)
    }
}

impl<T: Record + Clone + PartialEq> TableState<T> {
    fn index(&mut self, row: &T, key: &str, add: bool) {
        for unique in &mut self.uniques {
            let value = (unique.value_of)(row);
            if add {
                unique.keys_by_value.insert(value, key.to_owned());
            } else if unique.keys_by_value.get(&value).is_some_and(|k| k == key) {
                unique.keys_by_value.remove(&value);
            }
        }
    }

    fn remove_key(&mut self, key: &str) -> bool {
        let Some(seq) = self.seq_by_key.remove(key) else { return false };
        if let Some(row) = self.rows.remove(&seq) {
            self.index(&row, key, false);
        }
        true
    }
}

impl<T: Record + Clone + PartialEq> Extractor for MemoryTable<T> {
    type Item = T;

    async fn estimate(&mut self, from: Option<&Position>) -> dmf_core::Result<Option<u64>> {
        let after = match from {
            Some(position) => Some(position.decode::<u64>()?),
            None => None,
        };
        let state = self.lock();
        let remaining = match after {
            Some(seq) => state.rows.range(seq + 1..).count(),
            None => state.rows.len(),
        };
        Ok(Some(remaining as u64))
    }

    fn extract(
        &mut self,
        from: Option<Position>,
        batch_size: NonZeroUsize,
    ) -> BoxStream<'_, dmf_core::Result<SourceBatch<T>>> {
        let start = match from.map(|p| p.decode::<u64>()).transpose() {
            Ok(after) => after.map_or(0, |seq| seq + 1),
            Err(error) => return stream::once(async move { Err(error) }).boxed(),
        };
        let table = self.clone();
        stream::unfold(Some(start), move |next| {
            let table = table.clone();
            async move {
                let next = next?;
                let state = table.lock();
                let page: Vec<(u64, T)> =
                    state.rows.range(next..).take(batch_size.get()).map(|(seq, row)| (*seq, row.clone())).collect();
                drop(state);
                let last = page.last()?.0;
                let batch = Position::encode(&last)
                    .map(|position| SourceBatch { records: page.into_iter().map(|(_, row)| row).collect(), position });
                Some((batch, Some(last + 1)))
            }
        })
        .boxed()
    }
}

/// The rows of a [`MemoryTable`] in one [`KeyRange`] of read positions; see
/// [`MemoryTable::range`].
pub struct MemoryRange<T> {
    table: MemoryTable<T>,
    range: KeyRange,
}

impl<T> MemoryRange<T> {
    /// The range read.
    pub fn key_range(&self) -> &KeyRange {
        &self.range
    }
}

fn seq_key(seq: u64) -> Vec<Value> {
    vec![Value::Int(i64::try_from(seq).unwrap_or(i64::MAX))]
}

impl<T: Record + Clone + PartialEq> MemoryRange<T> {
    /// The first sequence number to read, after `from` (or the range's start).
    fn first(&self, from: Option<&Position>) -> dmf_core::Result<u64> {
        let resume = from.map(|p| p.decode::<u64>()).transpose()?.map(seq_key);
        Ok(match self.range.start(resume).as_deref() {
            Some([Value::Int(after)]) => u64::try_from(*after).map_or(0, |a| a + 1),
            Some(other) => {
                return Err(Error::fatal(
                    Stage::Extract,
                    format!("table `{}`: range bound {other:?} is not a read position", self.table.name),
                ));
            }
            None => 0,
        })
    }

    fn rows_from(&self, first: u64, limit: usize) -> Vec<(u64, T)> {
        let state = self.table.lock();
        state
            .rows
            .range(first..)
            .take_while(|(seq, _)| self.range.contains(&seq_key(**seq)))
            .take(limit)
            .map(|(seq, row)| (*seq, row.clone()))
            .collect()
    }
}

impl<T: Record + Clone + PartialEq> Extractor for MemoryRange<T> {
    type Item = T;

    fn scope(&self) -> Option<String> {
        self.range.scope()
    }

    async fn estimate(&mut self, from: Option<&Position>) -> dmf_core::Result<Option<u64>> {
        let first = self.first(from)?;
        Ok(Some(self.rows_from(first, usize::MAX).len() as u64))
    }

    fn extract(
        &mut self,
        from: Option<Position>,
        batch_size: NonZeroUsize,
    ) -> BoxStream<'_, dmf_core::Result<SourceBatch<T>>> {
        let first = match self.first(from.as_ref()) {
            Ok(first) => first,
            Err(error) => return stream::once(async move { Err(error) }).boxed(),
        };
        stream::unfold((self, Some(first)), move |(range, next)| async move {
            let next = next?;
            let page = range.rows_from(next, batch_size.get());
            let last = page.last()?.0;
            let batch = Position::encode(&last)
                .map(|position| SourceBatch { records: page.into_iter().map(|(_, row)| row).collect(), position });
            Some((batch, (range, Some(last + 1))))
        })
        .boxed()
    }
}

impl<T: Record + Clone + PartialEq> Loader for MemoryTable<T> {
    type Item = T;

    async fn load(&mut self, batch: LoadBatch<'_, T>) -> dmf_core::Result<LoadReport> {
        let mut state = self.lock();
        let changes = self.plan_changes(&state, batch.records)?;
        let mut report = LoadReport::default();
        for change in changes {
            match change {
                Change::Insert(row) => {
                    let key = row.key();
                    state.index(&row, &key, true);
                    let seq = state.next_seq;
                    state.next_seq += 1;
                    state.rows.insert(seq, row);
                    state.seq_by_key.insert(key.clone(), seq);
                    state.undo.push(UndoEntry {
                        migration: batch.migration.clone(),
                        run: batch.run,
                        key,
                        before: None,
                    });
                    report.inserted += 1;
                }
                Change::Update { seq, before, after } => {
                    let key = after.key();
                    state.index(&before, &key, false);
                    state.index(&after, &key, true);
                    state.rows.insert(seq, after);
                    state.undo.push(UndoEntry {
                        migration: batch.migration.clone(),
                        run: batch.run,
                        key,
                        before: Some(before),
                    });
                    report.updated += 1;
                }
                Change::Unchanged => report.unchanged += 1,
            }
        }
        state.checkpoints.insert(batch.migration.clone(), batch.checkpoint.clone());
        state.loads += 1;
        Ok(report)
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> dmf_core::Result<Option<Checkpoint>> {
        Ok(self.lock().checkpoints.get(migration).cloned())
    }

    /// An append-only table inserts every record of a batch: it answers from its checkpoint.
    /// Otherwise a batch sent again changes nothing.
    async fn committed(
        &mut self,
        migration: &MigrationName,
        checkpoint: &Checkpoint,
        records: usize,
    ) -> dmf_core::Result<Option<LoadReport>> {
        if !self.lock().append_only {
            return Ok(None);
        }
        dmf_core::committed_insert(self, migration, checkpoint, records).await
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> dmf_core::Result<()> {
        self.lock().checkpoints.remove(migration);
        Ok(())
    }

    async fn rollback(&mut self, migration: &MigrationName, run: RunId) -> dmf_core::Result<RollbackReport> {
        let mut state = self.lock();
        let entries = std::mem::take(&mut state.undo);
        let (mine, others): (Vec<_>, Vec<_>) =
            entries.into_iter().partition(|e| e.migration == *migration && e.run == run);
        state.undo = others;
        let mut report = RollbackReport::default();
        for entry in mine.into_iter().rev() {
            match entry.before {
                None => {
                    if state.remove_key(&entry.key) {
                        report.deleted += 1;
                    }
                }
                Some(before) => {
                    state.remove_key(&entry.key);
                    state.index(&before, &entry.key, true);
                    let seq = state.next_seq;
                    state.next_seq += 1;
                    state.rows.insert(seq, before);
                    state.seq_by_key.insert(entry.key, seq);
                    report.restored += 1;
                }
            }
        }
        state.checkpoints.remove(migration);
        Ok(report)
    }
}
