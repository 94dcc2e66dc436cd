//! An [`AnyDatabase`] behaves exactly as the database it wraps: every method of [`Database`],
//! of its [`Extractor`] and of its [`Loader`] reaches the wrapped implementation, the methods
//! with a default included (a forgotten one would silently fall back to the default, which
//! these tests would see: each answer here differs from the default's).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use dmf_core::catalog::{Catalog, Sequence, SequenceKind, TableName, Trigger, TriggerEvent};
use dmf_core::orchestrator::{CheckOutcome, RunStore};
use dmf_core::quality::{RuleCheck, Violations};
use dmf_core::sync::{
    AnyDatabase, Database, DatabaseRole, ExtractSpec, ForeignKeyTrust, KeyRange, LoadSpec, ReadOrder, TrustedWrites,
    WriteMode,
};
use dmf_core::{
    Checkpoint, Error, Extractor, LoadBatch, LoadReport, Loader, MigrationName, Position, Result, RollbackReport, Row,
    RowShape, RunId, SourceBatch, Value,
};
use dmf_testkit::MemoryRunStore;
use futures::StreamExt;
use futures::stream::BoxStream;

/// The calls a [`Recording`] database, its extractors and loaders received, by method name.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn push(&self, call: impl Into<String>) {
        self.0.lock().unwrap().push(call.into());
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A database that overrides every method, defaulted ones included, answers differently from
/// each default, and records each call.
#[derive(Clone, Default)]
struct Recording {
    calls: Calls,
    snapshot: bool,
}

fn table() -> TableName {
    TableName::new(Some("s"), "t")
}

fn sequence(last_value: i64) -> Sequence {
    Sequence {
        name: TableName::new(Some("s"), "t_id_seq"),
        kind: SequenceKind::Sequence,
        table: table(),
        column: Some("id".into()),
        last_value: Some(last_value),
    }
}

impl Database for Recording {
    type Extractor = RecordingExtractor;
    type Loader = RecordingLoader;

    fn display_name(&self) -> String {
        if self.snapshot { "recording (snapshot)".into() } else { "recording".into() }
    }

    fn parallel_writes(&self) -> bool {
        self.calls.push("parallel_writes");
        false
    }

    async fn read_catalog(&self) -> Result<Catalog> {
        self.calls.push("read_catalog");
        Ok(Catalog::default())
    }

    fn extractor(&self, spec: ExtractSpec) -> RecordingExtractor {
        self.calls.push(format!("extractor {}", spec.table));
        RecordingExtractor { calls: self.calls.clone(), shape: Arc::clone(&spec.shape) }
    }

    async fn key_ranges(&self, spec: &ExtractSpec, parts: NonZeroUsize) -> Result<Vec<KeyRange>> {
        self.calls.push(format!("key_ranges {} {parts}", spec.table));
        Ok(KeyRange::split_integers(1, 100, parts))
    }

    fn loader(&self, spec: LoadSpec) -> RecordingLoader {
        self.calls.push(format!("loader {}", spec.table));
        RecordingLoader { calls: self.calls.clone() }
    }

    async fn clear_tables(&self, tables: Vec<TableName>) -> Result<u64> {
        self.calls.push(format!("clear_tables {}", tables.len()));
        Ok(17)
    }

    async fn run_store(&self) -> Result<Arc<dyn RunStore>> {
        self.calls.push("run_store");
        Ok(Arc::new(MemoryRunStore::new()))
    }

    async fn foreign_key_trust(
        &self,
        tables: &[TableName],
        writes: TrustedWrites,
        skip_triggers: bool,
    ) -> Result<ForeignKeyTrust> {
        self.calls.push(format!("foreign_key_trust {} {writes:?} {skip_triggers}", tables.len()));
        Ok(ForeignKeyTrust {
            allowed: true,
            reason: "recorded".into(),
            per_row_tables: Vec::new(),
            silences_triggers: true,
        })
    }

    async fn after_trusted_load(&self, tables: &[TableName]) -> Result<()> {
        self.calls.push(format!("after_trusted_load {}", tables.len()));
        Err(Error::Config("after_trusted_load reached the wrapped database".into()))
    }

    async fn sequences(&self, tables: &[TableName]) -> Result<Vec<Sequence>> {
        self.calls.push(format!("sequences {}", tables.len()));
        Ok(vec![sequence(41)])
    }

    async fn set_sequences(&self, sequences: &[Sequence]) -> Result<()> {
        self.calls.push(format!("set_sequences {:?}", sequences.iter().map(|s| s.last_value).collect::<Vec<_>>()));
        Ok(())
    }

    async fn triggers(&self, tables: &[TableName]) -> Result<Vec<Trigger>> {
        self.calls.push(format!("triggers {}", tables.len()));
        Ok(vec![Trigger {
            table: table(),
            name: "audit".into(),
            timing: "AFTER".into(),
            events: [TriggerEvent::Insert].into(),
            fires: true,
            fires_when_skipped: false,
        }])
    }

    fn clearing_event(&self) -> TriggerEvent {
        self.calls.push("clearing_event");
        TriggerEvent::Truncate
    }

    async fn preflight(&self, role: DatabaseRole) -> Vec<CheckOutcome> {
        self.calls.push(format!("preflight {role:?}"));
        vec![CheckOutcome::passed("recording", "reached")]
    }

    async fn find_violations(&self, check: &RuleCheck, sample: usize) -> Result<Violations> {
        let _ = check;
        self.calls.push(format!("find_violations {sample}"));
        Ok(Violations { count: 3, sample: vec!["id=1".into()] })
    }

    async fn snapshot(&self) -> Result<Self> {
        self.calls.push("snapshot");
        Ok(Self { calls: self.calls.clone(), snapshot: true })
    }
}

/// Overrides every method of [`Extractor`]; reads one row.
struct RecordingExtractor {
    calls: Calls,
    shape: Arc<RowShape>,
}

impl Extractor for RecordingExtractor {
    type Item = Row;

    fn continues_after_completion(&self) -> bool {
        self.calls.push("continues_after_completion");
        true
    }

    fn scope(&self) -> Option<String> {
        self.calls.push("scope");
        Some("recorded".into())
    }

    async fn estimate(&mut self, from: Option<&Position>) -> Result<Option<u64>> {
        self.calls.push(format!("estimate {:?}", from.map(Position::as_str)));
        Ok(Some(42))
    }

    fn extract(&mut self, from: Option<Position>, batch_size: NonZeroUsize) -> BoxStream<'_, Result<SourceBatch<Row>>> {
        self.calls.push(format!("extract {:?} {batch_size}", from.as_ref().map(Position::as_str)));
        let row = Row::new(Arc::clone(&self.shape), vec![Value::Int(1)]);
        futures::stream::iter([Ok(SourceBatch { records: vec![row], position: Position::new("[1]") })]).boxed()
    }
}

/// Overrides every method of [`Loader`].
struct RecordingLoader {
    calls: Calls,
}

impl Loader for RecordingLoader {
    type Item = Row;

    async fn load(&mut self, batch: LoadBatch<'_, Row>) -> Result<LoadReport> {
        self.calls.push(format!("load {} {}", batch.migration, batch.records.len()));
        Ok(LoadReport { inserted: batch.records.len() as u64, ..LoadReport::default() })
    }

    async fn checkpoint(&mut self, migration: &MigrationName) -> Result<Option<Checkpoint>> {
        self.calls.push(format!("checkpoint {migration}"));
        Ok(Some(Checkpoint::at(Position::new("[9]"))))
    }

    async fn clear_checkpoint(&mut self, migration: &MigrationName) -> Result<()> {
        self.calls.push(format!("clear_checkpoint {migration}"));
        Ok(())
    }

    async fn rollback(&mut self, migration: &MigrationName, run: RunId) -> Result<RollbackReport> {
        self.calls.push(format!("rollback {migration} {run}"));
        Ok(RollbackReport { deleted: 5, restored: 6 })
    }

    async fn committed(
        &mut self,
        migration: &MigrationName,
        checkpoint: &Checkpoint,
        records: usize,
    ) -> Result<Option<LoadReport>> {
        let _ = checkpoint;
        self.calls.push(format!("committed {migration} {records}"));
        Ok(Some(LoadReport { inserted: 7, ..LoadReport::default() }))
    }

    fn finish(&mut self, migration: &MigrationName) -> impl Future<Output = Result<()>> + Send {
        self.calls.push(format!("finish {migration}"));
        async { Err(Error::Config("finish reached the wrapped loader".into())) }
    }
}

fn extract_spec() -> ExtractSpec {
    let shape = Arc::new(RowShape { table: table(), columns: vec!["id".into()], key: vec![0] });
    let column = dmf_core::catalog::Column::new("id", dmf_core::catalog::DataType::Int64, "bigint");
    ExtractSpec {
        table: table(),
        columns: vec![column],
        key: vec!["id".into()],
        order: ReadOrder::Key,
        shape,
        range: None,
        query: None,
    }
}

fn load_spec() -> LoadSpec {
    let column = dmf_core::catalog::Column::new("id", dmf_core::catalog::DataType::Int64, "bigint");
    LoadSpec {
        table: table(),
        columns: vec![column],
        key: vec!["id".into()],
        write: WriteMode::Insert,
        null_columns: Default::default(),
        undo: false,
        trust_foreign_keys: false,
    }
}

/// Calls every [`Database`] method of `database` (generically, as the sync engine does).
async fn every_database_method<D: Database>(database: &D) -> Vec<String> {
    let tables = [table()];
    let mut seen = vec![database.display_name(), format!("parallel {}", database.parallel_writes())];
    seen.push(format!("{:?}", database.read_catalog().await.unwrap()));
    let ranges = database.key_ranges(&extract_spec(), NonZeroUsize::new(2).unwrap()).await.unwrap();
    seen.push(format!("{} ranges", ranges.len()));
    seen.push(format!("cleared {}", database.clear_tables(tables.to_vec()).await.unwrap()));
    let store = database.run_store().await.unwrap();
    seen.push(format!("run store with {} runs", store.runs(10).await.unwrap().len()));
    let trust = database.foreign_key_trust(&tables, TrustedWrites::Inserts, true).await.unwrap();
    seen.push(format!("trust {} {} {}", trust.allowed, trust.reason, trust.silences_triggers));
    seen.push(format!("after load: {}", database.after_trusted_load(&tables).await.unwrap_err()));
    seen.push(format!("{:?}", database.sequences(&tables).await.unwrap()));
    database.set_sequences(&[sequence(99)]).await.unwrap();
    seen.push(format!("{:?}", database.triggers(&tables).await.unwrap()));
    seen.push(format!("clearing by {:?}", database.clearing_event()));
    seen.push(format!("{:?}", database.preflight(DatabaseRole::Target).await));
    let check = RuleCheck::NotNull { table: table(), key: vec!["id".into()], column: "name".into() };
    seen.push(format!("{:?}", database.find_violations(&check, 10).await.unwrap()));
    seen.push(database.snapshot().await.unwrap().display_name());
    seen
}

/// Calls every [`Extractor`] and [`Loader`] method of `database`'s extractor and loader.
async fn every_extractor_and_loader_method<D: Database>(database: &D) -> Vec<String> {
    let mut extractor = database.extractor(extract_spec());
    let mut seen = vec![format!("{} {:?}", extractor.continues_after_completion(), extractor.scope())];
    seen.push(format!("{:?}", extractor.estimate(Some(&Position::new("[0]"))).await.unwrap()));
    let batches: Vec<_> = extractor.extract(None, NonZeroUsize::new(5).unwrap()).collect().await;
    seen.push(format!("{} batch, {} row", batches.len(), batches[0].as_ref().unwrap().records.len()));
    let rows: Vec<Row> = batches.into_iter().flat_map(|b| b.unwrap().records).collect();

    let mut loader = database.loader(load_spec());
    let migration = MigrationName::new("s.t");
    let checkpoint = Checkpoint::at(Position::new("[1]"));
    let batch = LoadBatch { migration: &migration, run: RunId(4), records: &rows, checkpoint: &checkpoint };
    seen.push(format!("{:?}", loader.load(batch).await.unwrap()));
    seen.push(format!("{:?}", loader.checkpoint(&migration).await.unwrap()));
    loader.clear_checkpoint(&migration).await.unwrap();
    seen.push(format!("{:?}", loader.rollback(&migration, RunId(4)).await.unwrap()));
    seen.push(format!("{:?}", loader.committed(&migration, &checkpoint, 3).await.unwrap()));
    seen.push(format!("{}", loader.finish(&migration).await.unwrap_err()));
    seen
}

#[tokio::test]
async fn every_database_method_defaulted_ones_included_reaches_the_wrapped_database() {
    let direct = Recording::default();
    let expected = every_database_method(&direct).await;
    let expected_calls = direct.calls.take();

    let wrapped = Recording::default();
    let any = AnyDatabase::new(wrapped.clone());
    assert_eq!(every_database_method(&any).await, expected, "the answers are the wrapped database's");
    assert_eq!(wrapped.calls.take(), expected_calls, "the same calls, in the same order");
    assert!(expected_calls.iter().any(|c| c == "set_sequences [Some(99)]"), "{expected_calls:?}");
    assert!(expected.contains(&"parallel false".to_owned()), "{expected:?}");
    assert!(expected.contains(&"recording (snapshot)".to_owned()), "{expected:?}");
    assert!(expected.contains(&"clearing by Truncate".to_owned()), "{expected:?}");
}

#[tokio::test]
async fn every_extractor_and_loader_method_defaulted_ones_included_reaches_the_wrapped_one() {
    let direct = Recording::default();
    let expected = every_extractor_and_loader_method(&direct).await;
    let expected_calls = direct.calls.take();

    let wrapped = Recording::default();
    let any = AnyDatabase::new(wrapped.clone());
    assert_eq!(every_extractor_and_loader_method(&any).await, expected);
    assert_eq!(wrapped.calls.take(), expected_calls);
    for call in ["continues_after_completion", "scope", "rollback s.t 4", "committed s.t 3", "finish s.t"] {
        assert!(expected_calls.iter().any(|c| c == call), "no `{call}` in {expected_calls:?}");
    }
}

#[tokio::test]
async fn a_snapshot_of_an_erased_database_is_the_wrapped_database_s_snapshot() {
    let any = AnyDatabase::new(Recording::default());
    let snapshot = any.snapshot().await.unwrap();
    assert_eq!(snapshot.display_name(), "recording (snapshot)");
    assert!(snapshot.downcast_ref::<Recording>().is_some_and(|r| r.snapshot));
}

#[test]
fn an_erased_database_is_found_again_by_its_type_and_never_wrapped_twice() {
    let any = AnyDatabase::new(Recording::default());
    assert!(any.downcast_ref::<Recording>().is_some());
    assert!(any.downcast_ref::<dmf_testkit::FaultyDatabase<Recording>>().is_none());
    let again = AnyDatabase::new(any.clone());
    assert!(again.downcast_ref::<Recording>().is_some(), "not an AnyDatabase inside an AnyDatabase");
    assert!(again.downcast_ref::<AnyDatabase>().is_some());
    assert_eq!(format!("{again:?}"), "AnyDatabase(\"recording\")");
}
