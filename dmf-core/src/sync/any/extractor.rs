//! [`AnyExtractor`]: any adapter's extractor of rows, boxed.

use std::num::NonZeroUsize;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::checkpoint::Position;
use crate::error::Result;
use crate::pipeline::{Extractor, SourceBatch};
use crate::value::Row;

/// The extractor of an [`AnyDatabase`](super::AnyDatabase): any [`Extractor`] of rows, boxed.
///
/// Every method forwards to the wrapped extractor, defaulted ones included. Its batches cost
/// nothing more than the wrapped extractor's: [`Extractor::extract`] already returns a boxed
/// stream, handed on as it is; [`estimate`](Extractor::estimate) boxes one future per call.
pub struct AnyExtractor {
    inner: Box<dyn DynExtractor>,
}

impl AnyExtractor {
    /// Boxes `extractor`.
    pub fn new<E: Extractor<Item = Row>>(extractor: E) -> Self {
        Self { inner: Box::new(extractor) }
    }
}

impl std::fmt::Debug for AnyExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyExtractor").finish_non_exhaustive()
    }
}

/// The object-safe mirror of [`Extractor`] (boxed futures), implemented for every extractor of
/// rows.
trait DynExtractor: Send + 'static {
    fn continues_after_completion(&self) -> bool;
    fn scope(&self) -> Option<String>;
    fn estimate<'a>(&'a mut self, from: Option<&'a Position>) -> BoxFuture<'a, Result<Option<u64>>>;
    fn extract(&mut self, from: Option<Position>, batch_size: NonZeroUsize) -> BoxStream<'_, Result<SourceBatch<Row>>>;
}

impl<E: Extractor<Item = Row>> DynExtractor for E {
    fn continues_after_completion(&self) -> bool {
        Extractor::continues_after_completion(self)
    }

    fn scope(&self) -> Option<String> {
        Extractor::scope(self)
    }

    fn estimate<'a>(&'a mut self, from: Option<&'a Position>) -> BoxFuture<'a, Result<Option<u64>>> {
        Box::pin(Extractor::estimate(self, from))
    }

    fn extract(&mut self, from: Option<Position>, batch_size: NonZeroUsize) -> BoxStream<'_, Result<SourceBatch<Row>>> {
        Extractor::extract(self, from, batch_size)
    }
}

/// `estimate` is an `async fn` awaiting the boxed future (no allocation): the box lives as
/// long as the shorter of its two borrows, which `impl Future` cannot name.
impl Extractor for AnyExtractor {
    type Item = Row;

    fn continues_after_completion(&self) -> bool {
        self.inner.continues_after_completion()
    }

    fn scope(&self) -> Option<String> {
        self.inner.scope()
    }

    async fn estimate(&mut self, from: Option<&Position>) -> Result<Option<u64>> {
        self.inner.estimate(from).await
    }

    fn extract(&mut self, from: Option<Position>, batch_size: NonZeroUsize) -> BoxStream<'_, Result<SourceBatch<Row>>> {
        self.inner.extract(from, batch_size)
    }
}
