//! # Engine overhead per row
//!
//! What the batch engine itself costs, with no database and no fake table in the way: a
//! minimal extractor hands out slices of a pre-built `Vec` of small `Copy` rows, the
//! transformer copies each row, and the loader only counts rows and keeps the checkpoint in a
//! field. Each iteration runs one [`Pipeline`] execution of 100,000 rows (permits, channels,
//! transform and validate stages, checkpoints, progress events, metrics) on a tokio multi-thread
//! runtime, for batch sizes 100, 1,000 and 10,000. Divide the time per iteration by 100,000 (or
//! read criterion's throughput) for the overhead per row.
//!
//! ```sh
//! cargo bench --bench engine_overhead
//! ```
// A failed execution must stop the bench rather than be timed, so `expect` is right here.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dmf_core::{
    Checkpoint, DataMigration, EngineConfig, Extractor, LoadBatch, LoadReport, Loader, MigrationContext, MigrationName,
    Pipeline, Position, Record, RejectLimit, RunId, SourceBatch, Transformed, transform_fn,
};
use dmf_testkit::MemoryRunStore;
use futures::stream::{self, BoxStream, StreamExt};

const ROWS: usize = 100_000;

/// The smallest useful row: two integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
struct Row {
    id: i64,
    value: i64,
}

impl Record for Row {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

/// Reads batches from a shared `Vec`; the position is the index of the next row.
struct VecExtractor {
    rows: Arc<Vec<Row>>,
}

impl VecExtractor {
    fn start(from: Option<&Position>) -> dmf_core::Result<usize> {
        Ok(match from {
            Some(position) => position.decode::<usize>()?,
            None => 0,
        })
    }
}

impl Extractor for VecExtractor {
    type Item = Row;

    async fn estimate(&mut self, from: Option<&Position>) -> dmf_core::Result<Option<u64>> {
        Ok(Some(self.rows.len().saturating_sub(Self::start(from)?) as u64))
    }

    fn extract(
        &mut self,
        from: Option<Position>,
        batch_size: NonZeroUsize,
    ) -> BoxStream<'_, dmf_core::Result<SourceBatch<Row>>> {
        let start = match Self::start(from.as_ref()) {
            Ok(start) => start,
            Err(error) => return stream::once(async move { Err(error) }).boxed(),
        };
        let rows = &self.rows;
        stream::iter((start..rows.len()).step_by(batch_size.get()).map(move |first| {
            let end = (first + batch_size.get()).min(rows.len());
            Ok(SourceBatch { records: rows[first..end].to_vec(), position: Position::encode(&end)? })
        }))
        .boxed()
    }
}

/// Counts rows and keeps the last checkpoint; writes nothing.
#[derive(Default)]
struct CountingLoader {
    rows: u64,
    checkpoint: Option<Checkpoint>,
}

impl Loader for CountingLoader {
    type Item = Row;

    async fn load(&mut self, batch: LoadBatch<'_, Row>) -> dmf_core::Result<LoadReport> {
        self.rows += batch.records.len() as u64;
        self.checkpoint = Some(batch.checkpoint.clone());
        Ok(LoadReport { inserted: batch.records.len() as u64, ..LoadReport::default() })
    }

    async fn checkpoint(&mut self, _migration: &MigrationName) -> dmf_core::Result<Option<Checkpoint>> {
        Ok(self.checkpoint.clone())
    }

    async fn clear_checkpoint(&mut self, _migration: &MigrationName) -> dmf_core::Result<()> {
        self.checkpoint = None;
        Ok(())
    }
}

fn context(batch_size: usize) -> MigrationContext {
    let config = EngineConfig::builder()
        .batch_size(batch_size)
        .pipeline_depth(4)
        .reject_limit(RejectLimit::Unlimited)
        .build()
        .expect("a valid engine configuration");
    // The store is only touched for rejects, and this pipeline rejects nothing.
    let mut ctx = MigrationContext::new(RunId(1), Arc::new(config), Arc::new(MemoryRunStore::new()));
    // Every iteration migrates everything again, rather than finding the migration done.
    ctx.restart = true;
    ctx
}

fn engine_overhead(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let rows: Arc<Vec<Row>> = Arc::new((1..=ROWS as i64).map(|id| Row { id, value: id }).collect());

    let mut group = c.benchmark_group("engine_overhead");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(ROWS as u64));
    for batch_size in [100, 1_000, 10_000] {
        let pipeline = Pipeline::new(
            VecExtractor { rows: Arc::clone(&rows) },
            transform_fn(|row: &Row| Transformed::Mapped(*row)),
            CountingLoader::default(),
        )
        .named("overhead");
        let ctx = context(batch_size);
        group.bench_with_input(BenchmarkId::new("batch_size", batch_size), &batch_size, |b, _| {
            b.iter(|| {
                let result = runtime.block_on(pipeline.execute(&ctx)).expect("the pipeline runs");
                assert_eq!(result.counts.inserted, ROWS as u64, "every row is loaded");
                black_box(result)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, engine_overhead);
criterion_main!(benches);
