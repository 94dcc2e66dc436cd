//! Rows kept in their source database's own encoding, so that a target of the same kind can write
//! them as they are, with no [`Value`] made in between.
//!
//! A PostgreSQL-to-PostgreSQL sync is the case in point: the source sends each row as its
//! columns' binary forms, which is exactly what a binary COPY into a table with columns of the
//! same types takes. Decoding every value into a [`Value`] and encoding it back costs more CPU
//! than anything else DMF does on the client. A [`Row`](crate::Row) made with
//! [`Row::native`](crate::Row::native) carries the bytes and decodes its values only when
//! something asks for them (a loader of another kind, a comparison, a reject's payload); a
//! loader that recognises the [`NativeEncoding`] copies the bytes instead.

use std::any::Any;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use crate::value::Value;

/// How a database encodes rows, and how to decode one into values.
///
/// Implemented by an adapter for what its extractor reads; its loader downcasts
/// ([`as_any`](Self::as_any)) to recognise bytes it can write as they are.
pub trait NativeEncoding: fmt::Debug + Send + Sync + 'static {
    /// The values of one row encoded in `bytes`, in column order.
    ///
    /// Must not fail: an extractor makes a native row only from bytes it has checked decode,
    /// and reports any other row as an error when it reads it. Should it fail all the same, an
    /// implementation returns what it can (a NULL for the value it cannot decode) and logs it.
    fn decode(&self, bytes: &[u8]) -> Vec<Value>;

    /// The encoding as [`Any`], for a loader to recognise its own kind.
    fn as_any(&self) -> &dyn Any;
}

/// The bytes of a page of rows read together, in one encoding.
#[derive(Debug)]
pub struct NativeRows {
    encoding: Arc<dyn NativeEncoding>,
    bytes: Vec<u8>,
}

impl NativeRows {
    /// `bytes` holding rows in `encoding`, one after another.
    pub fn new(encoding: Arc<dyn NativeEncoding>, bytes: Vec<u8>) -> Arc<Self> {
        Arc::new(Self { encoding, bytes })
    }

    /// The page's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// One row of a [`NativeRows`] page: its encoding and its bytes (a range of the page, which it
/// keeps alive).
///
/// ```
/// use std::sync::Arc;
/// use dmf_core::{NativeEncoding, NativeRow, NativeRows, Value};
///
/// /// Each byte is one integer column.
/// #[derive(Debug)]
/// struct Bytes;
/// impl NativeEncoding for Bytes {
///     fn decode(&self, bytes: &[u8]) -> Vec<Value> {
///         bytes.iter().map(|b| Value::Int((*b).into())).collect()
///     }
///     fn as_any(&self) -> &dyn std::any::Any { self }
/// }
///
/// let page = NativeRows::new(Arc::new(Bytes), vec![1, 2, 3, 4]);
/// let second = NativeRow::new(&page, 2..4).unwrap();
/// assert_eq!(second.bytes(), [3, 4]);
/// assert_eq!(second.decode(), [Value::Int(3), Value::Int(4)]);
/// ```
#[derive(Clone)]
pub struct NativeRow {
    rows: Arc<NativeRows>,
    start: usize,
    end: usize,
}

impl NativeRow {
    /// The row at `range` of `rows`; `None` when the range is not within the page.
    pub fn new(rows: &Arc<NativeRows>, range: Range<usize>) -> Option<Self> {
        rows.bytes.get(range.clone())?;
        Some(Self { rows: Arc::clone(rows), start: range.start, end: range.end })
    }

    /// The row's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.rows.bytes[self.start..self.end]
    }

    /// How the bytes are encoded.
    pub fn encoding(&self) -> &Arc<dyn NativeEncoding> {
        &self.rows.encoding
    }

    /// The row's values.
    pub fn decode(&self) -> Vec<Value> {
        self.rows.encoding.decode(self.bytes())
    }

    /// The row in a page of its own, so that keeping it does not keep the rest of its page.
    pub fn detach(&self) -> Self {
        let bytes = self.bytes().to_vec();
        let end = bytes.len();
        Self { rows: NativeRows::new(Arc::clone(&self.rows.encoding), bytes), start: 0, end }
    }
}

impl fmt::Debug for NativeRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeRow")
            .field("encoding", &self.rows.encoding)
            .field("len", &(self.end - self.start))
            .finish()
    }
}

/// Rows read one after another in one [`NativeRows`] page, as one range of it: what a loader
/// that takes the bytes as they are writes in one piece.
///
/// ```
/// # use std::sync::Arc;
/// # use dmf_core::{NativeEncoding, NativeRow, NativeRows, NativeSpan, Value};
/// # #[derive(Debug)]
/// # struct Bytes;
/// # impl NativeEncoding for Bytes {
/// #     fn decode(&self, bytes: &[u8]) -> Vec<Value> { Vec::new() }
/// #     fn as_any(&self) -> &dyn std::any::Any { self }
/// # }
/// let page = NativeRows::new(Arc::new(Bytes), vec![1, 2, 3, 4]);
/// let row = |range| NativeRow::new(&page, range).unwrap();
/// let mut span = NativeSpan::from(&row(0..1));
/// assert!(span.extend(&row(1..3)));
/// assert!(!span.extend(&row(0..1)), "does not follow");
/// assert_eq!(span.bytes(), [1, 2, 3]);
/// ```
#[derive(Clone)]
pub struct NativeSpan {
    rows: Arc<NativeRows>,
    start: usize,
    end: usize,
}

impl NativeSpan {
    /// Extends the span to the end of `next` when `next` directly follows it in the same page;
    /// `false` (and no change) otherwise.
    pub fn extend(&mut self, next: &NativeRow) -> bool {
        let follows = Arc::ptr_eq(&self.rows, &next.rows) && self.end == next.start;
        if follows {
            self.end = next.end;
        }
        follows
    }

    /// The bytes of the span's rows.
    pub fn bytes(&self) -> &[u8] {
        &self.rows.bytes[self.start..self.end]
    }
}

/// A span of one row.
impl From<&NativeRow> for NativeSpan {
    fn from(row: &NativeRow) -> Self {
        Self { rows: Arc::clone(&row.rows), start: row.start, end: row.end }
    }
}

/// The span's bytes, for a buffer that keeps the page alive instead of copying them
/// (`bytes::Bytes::from_owner`).
impl AsRef<[u8]> for NativeSpan {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl fmt::Debug for NativeSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeSpan").field("len", &(self.end - self.start)).finish()
    }
}
