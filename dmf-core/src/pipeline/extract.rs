//! The source side of a pipeline.

use std::future::Future;
use std::num::NonZeroUsize;

use futures::stream::BoxStream;

use crate::checkpoint::Position;
use crate::error::Result;
use crate::record::Record;

/// One batch read from the source, with the position to resume after it.
#[derive(Debug)]
pub struct SourceBatch<T> {
    /// The records, in source order.
    pub records: Vec<T>,
    /// Where the next batch starts: resuming from here re-reads nothing of this batch.
    pub position: Position,
}

/// Reads a source as a stream of batches, starting after a resume position.
///
/// Used only through generics (by [`Pipeline`](crate::Pipeline)), so it uses native `async`
/// methods rather than `async-trait`: no boxing per call. Implementations may write
/// `async fn estimate(..)`.
///
/// Contract: for the same source content, extracting from a position yields the same records
/// in the same order (keyset pagination does), so a checkpoint with `skip` can be honoured.
pub trait Extractor: Send + 'static {
    /// The record type produced.
    type Item: Record;

    /// True for incremental extractors, whose position is a watermark ("changed after …") that
    /// stays meaningful once the migration completed: a later run continues from it instead of
    /// having nothing to do, and a forced run keeps it instead of starting over.
    fn continues_after_completion(&self) -> bool {
        false
    }

    /// Names the order this extractor's positions are in (`None`: the only order it has).
    /// Checkpoints are stored with it; one written under another scope (by a sync in another
    /// mode, say) is ignored and the migration starts over rather than misreading it.
    fn scope(&self) -> Option<String> {
        None
    }

    /// How many records remain after `from`, if cheaply known (for progress and ETA).
    fn estimate(&mut self, from: Option<&Position>) -> impl Future<Output = Result<Option<u64>>> + Send {
        let _ = from;
        async { Ok(None) }
    }

    /// Streams batches of at most `batch_size` records, starting after `from` (from the start
    /// when `None`). Errors are classified (see [`ErrorKind`](crate::ErrorKind)): after a
    /// transient one the engine drops the stream and calls `extract` again from the last
    /// position it received.
    fn extract(
        &mut self,
        from: Option<Position>,
        batch_size: NonZeroUsize,
    ) -> BoxStream<'_, Result<SourceBatch<Self::Item>>>;
}
