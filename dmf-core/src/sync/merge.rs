//! Comparing two sides read in key order: the rows to write (diff mode) and the rows to delete
//! (diff mode, and incremental mode with delete propagation).

use std::cmp::Ordering;
use std::num::NonZeroUsize;

use futures::stream::{self, BoxStream, StreamExt};

use super::key_position;
use crate::checkpoint::Position;
use crate::error::Result;
use crate::pipeline::{Extractor, SourceBatch};
use crate::value::{Row, Value};

/// Which rows a [`MergeExtractor`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeOutput {
    /// Source rows whose key is missing in the target or whose values differ.
    ChangedOrMissing,
    /// Target rows whose key is missing in the source (to delete).
    MissingInSource,
}

/// Reads the source and the target in key order at the same time and yields only the rows
/// that differ, in batches. Memory stays bounded: only one page of each side is held.
///
/// Both extractors must read the same columns in the same order, ordered by the same key with
/// [`key_position`] positions, so one position (the last key compared) resumes both. Values
/// are compared by their [canonical](crate::Value::canonical) form, so rows read from two
/// different databases compare equal when they hold the same data.
pub struct MergeExtractor<A, B> {
    source: A,
    target: B,
    output: MergeOutput,
}

impl<A, B> MergeExtractor<A, B> {
    /// Merges `source` and `target`, producing `output`.
    pub fn new(source: A, target: B, output: MergeOutput) -> Self {
        Self { source, target, output }
    }
}

/// One side of the merge: a page stream and the rows of the current page not yet compared.
struct Side<'a> {
    stream: BoxStream<'a, Result<SourceBatch<Row>>>,
    page: std::vec::IntoIter<Row>,
    done: bool,
}

impl<'a> Side<'a> {
    fn new(stream: BoxStream<'a, Result<SourceBatch<Row>>>) -> Self {
        Self { stream, page: Vec::new().into_iter(), done: false }
    }

    /// The next row, reading a new page when the current one is used up.
    async fn peek(&mut self) -> Result<Option<&Row>> {
        while self.page.as_slice().is_empty() && !self.done {
            match self.stream.next().await {
                Some(batch) => self.page = batch?.records.into_iter(),
                None => self.done = true,
            }
        }
        Ok(self.page.as_slice().first())
    }

    fn take(&mut self) -> Option<Row> {
        self.page.next()
    }
}

fn same_values(a: &Row, b: &Row) -> bool {
    a.values().len() == b.values().len()
        && a.values().iter().zip(b.values()).all(|(x, y)| x == y || x.canonical() == y.canonical())
}

fn key_of(row: &Row) -> Vec<Value> {
    row.key_values().cloned().collect()
}

struct MergeState<'a> {
    source: Side<'a>,
    target: Side<'a>,
    output: MergeOutput,
    batch_size: usize,
    finished: bool,
}

impl MergeState<'_> {
    /// Compares rows until a batch is full, enough rows were compared to report progress, or
    /// both sides end. Returns the rows to emit and the last key compared.
    async fn next_batch(&mut self) -> Result<Option<SourceBatch<Row>>> {
        if self.finished {
            return Ok(None);
        }
        let mut out = Vec::new();
        let mut last_key: Option<Vec<Value>> = None;
        let mut compared = 0_usize;
        // Emit at least every ten batches' worth of comparisons, so checkpoints advance
        // through long identical stretches.
        let stretch = self.batch_size.saturating_mul(10);
        while out.len() < self.batch_size && compared < stretch {
            let order = match (self.source.peek().await?, self.target.peek().await?) {
                (None, None) => {
                    self.finished = true;
                    break;
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(s), Some(t)) => s.cmp_key(t),
            };
            compared += 1;
            match order {
                Ordering::Less => {
                    let Some(row) = self.source.take() else { break };
                    last_key = Some(key_of(&row));
                    if self.output == MergeOutput::ChangedOrMissing {
                        out.push(row.detached());
                    }
                }
                Ordering::Greater => {
                    let Some(row) = self.target.take() else { break };
                    last_key = Some(key_of(&row));
                    if self.output == MergeOutput::MissingInSource {
                        out.push(row.detached());
                    }
                }
                Ordering::Equal => {
                    let (Some(row), Some(theirs)) = (self.source.take(), self.target.take()) else { break };
                    last_key = Some(key_of(&row));
                    if self.output == MergeOutput::ChangedOrMissing && !same_values(&row, &theirs) {
                        out.push(row.detached());
                    }
                }
            }
        }
        let Some(key) = last_key else {
            return Ok(None);
        };
        Ok(Some(SourceBatch { records: out, position: key_position(&key)? }))
    }
}

impl<A, B> Extractor for MergeExtractor<A, B>
where
    A: Extractor<Item = Row>,
    B: Extractor<Item = Row>,
{
    type Item = Row;

    /// The source's scope: both sides read the same order and key range.
    fn scope(&self) -> Option<String> {
        self.source.scope()
    }

    fn extract(&mut self, from: Option<Position>, batch_size: NonZeroUsize) -> BoxStream<'_, Result<SourceBatch<Row>>> {
        let state = MergeState {
            source: Side::new(self.source.extract(from.clone(), batch_size)),
            target: Side::new(self.target.extract(from, batch_size)),
            output: self.output,
            batch_size: batch_size.get(),
            finished: false,
        };
        stream::unfold(state, |mut state| async move {
            match state.next_batch().await {
                Ok(Some(batch)) => Some((Ok(batch), state)),
                Ok(None) => None,
                Err(error) => {
                    state.finished = true;
                    Some((Err(error), state))
                }
            }
        })
        .boxed()
    }
}

/// What comparing two sides in key order found, counted (see [`count_differences`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DifferenceCounts {
    /// Source rows whose key the target lacks.
    pub only_source: u64,
    /// Target rows whose key the source lacks.
    pub only_target: u64,
    /// Rows in both that differ in a compared column.
    pub differ_compared: u64,
    /// Rows in both that differ only in columns not compared.
    pub differ_elsewhere: u64,
    /// Rows in both with equal values.
    pub same: u64,
    /// Source rows with a non-NULL value in a compared column.
    pub source_with_values: u64,
    /// Source rows missing in the target with a non-NULL value in a compared column.
    pub only_source_with_values: u64,
}

/// Reads both sides in key order, a page at a time, and counts how they differ, comparing
/// the columns at `compared` separately from the others (the columns a loader writes).
pub(crate) async fn count_differences<A, B>(
    source: &mut A,
    target: &mut B,
    compared: &[usize],
    batch_size: NonZeroUsize,
) -> Result<DifferenceCounts>
where
    A: Extractor<Item = Row>,
    B: Extractor<Item = Row>,
{
    let equal = |x: &Value, y: &Value| x == y || x.canonical() == y.canonical();
    let has_values = |row: &Row| compared.iter().any(|i| row.values().get(*i).is_some_and(|v| !v.is_null()));
    let mut counts = DifferenceCounts::default();
    let mut ours = Side::new(source.extract(None, batch_size));
    let mut theirs = Side::new(target.extract(None, batch_size));
    loop {
        let order = match (ours.peek().await?, theirs.peek().await?) {
            (None, None) => return Ok(counts),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(s), Some(t)) => s.cmp_key(t),
        };
        match order {
            Ordering::Greater => {
                theirs.take();
                counts.only_target += 1;
            }
            Ordering::Less => {
                let Some(row) = ours.take() else { continue };
                counts.only_source += 1;
                if has_values(&row) {
                    counts.source_with_values += 1;
                    counts.only_source_with_values += 1;
                }
            }
            Ordering::Equal => {
                let (Some(row), Some(other)) = (ours.take(), theirs.take()) else { continue };
                if has_values(&row) {
                    counts.source_with_values += 1;
                }
                let pairs = || row.values().iter().zip(other.values()).enumerate();
                if pairs().any(|(i, (x, y))| compared.contains(&i) && !equal(x, y)) {
                    counts.differ_compared += 1;
                } else if pairs().any(|(_, (x, y))| !equal(x, y)) {
                    counts.differ_elsewhere += 1;
                } else {
                    counts.same += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::catalog::TableName;
    use crate::sync::decode_key_position;
    use crate::value::RowShape;

    /// Rows `(id, value)` read in pages, resuming after a key position.
    struct VecSide(Vec<(i64, &'static str)>);

    impl Extractor for VecSide {
        type Item = Row;

        fn extract(&mut self, from: Option<Position>, size: NonZeroUsize) -> BoxStream<'_, Result<SourceBatch<Row>>> {
            let after = from.map(|p| decode_key_position(&p).unwrap()[0].clone());
            let shape = Arc::new(RowShape {
                table: TableName::new(None, "t"),
                columns: vec!["id".into(), "v".into()],
                key: vec![0],
            });
            let rows: Vec<Row> = self
                .0
                .iter()
                .filter(|(id, _)| after.as_ref().is_none_or(|a| Value::Int(*id).cmp_key(a) == Ordering::Greater))
                .map(|(id, v)| Row::new(shape.clone(), vec![Value::Int(*id), Value::Text((*v).into())]))
                .collect();
            let pages: Vec<_> = rows
                .chunks(size.get())
                .map(|c| {
                    let last = c.last().map(|r| r.key_values().cloned().collect::<Vec<_>>()).unwrap_or_default();
                    Ok(SourceBatch { records: c.to_vec(), position: key_position(&last).unwrap() })
                })
                .collect();
            stream::iter(pages).boxed()
        }
    }

    async fn ids(output: MergeOutput, from: Option<Position>, size: usize) -> (Vec<i64>, Option<Position>) {
        let source = VecSide(vec![(1, "a"), (2, "b"), (3, "c"), (5, "e"), (6, "f")]);
        let target = VecSide(vec![(1, "a"), (2, "B"), (4, "d"), (5, "e"), (7, "g")]);
        let mut merge = MergeExtractor::new(source, target, output);
        let batches: Vec<_> = merge.extract(from, NonZeroUsize::new(size).unwrap()).collect().await;
        let last = batches.last().map(|b| b.as_ref().unwrap().position.clone());
        let ids = batches
            .into_iter()
            .flat_map(|b| b.unwrap().records)
            .map(|r| match r.values()[0] {
                Value::Int(id) => id,
                _ => unreachable!(),
            })
            .collect();
        (ids, last)
    }

    #[tokio::test]
    async fn yields_changed_and_missing_source_rows() {
        for size in 1..6 {
            assert_eq!(ids(MergeOutput::ChangedOrMissing, None, size).await.0, [2, 3, 6], "page size {size}");
        }
    }

    #[tokio::test]
    async fn yields_target_rows_missing_in_the_source() {
        for size in 1..6 {
            let (found, last) = ids(MergeOutput::MissingInSource, None, size).await;
            assert_eq!(found, [4, 7]);
            assert_eq!(last.unwrap().as_str(), r#"[{"t":"int","v":7}]"#);
        }
    }

    #[tokio::test]
    async fn resumes_both_sides_from_one_key() {
        let from = key_position(&[Value::Int(3)]).unwrap();
        assert_eq!(ids(MergeOutput::ChangedOrMissing, Some(from.clone()), 2).await.0, [6]);
        assert_eq!(ids(MergeOutput::MissingInSource, Some(from), 2).await.0, [4, 7]);
    }
}
