//! Business rules: mapping one source record to one target record.

use std::marker::PhantomData;

use crate::record::Record;

/// What a transformer made of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Transformed<T> {
    /// The target record.
    Mapped(T),
    /// Deliberately not migrated (for example already present); counted as skipped.
    Skipped {
        /// Why, for logs and counts.
        reason: String,
    },
    /// Cannot be migrated; goes to the reject quarantine with this reason.
    Rejected {
        /// Why, naming the field and value.
        reason: String,
    },
}

/// Maps source records to target records, one at a time.
///
/// Synchronous on purpose: transformations are CPU work, and the engine runs several batches
/// through them at once on the runtime's threads (`transform_concurrency`). Used only through
/// generics, so no `async-trait`.
pub trait Transformer: Send + Sync + 'static {
    /// The source record type.
    type Input: Record;
    /// The target record type.
    type Output: Record;

    /// Maps one record.
    fn transform(&self, input: &Self::Input) -> Transformed<Self::Output>;

    /// For transformers that pass records through unchanged: moves `input` into the output
    /// (`Ok`), saving the clone that [`transform`](Self::transform) would make. Others return
    /// `Err(input)` (the default) and the engine calls `transform`.
    fn pass_through(&self, input: Self::Input) -> Result<Self::Output, Self::Input> {
        Err(input)
    }
}

/// A [`Transformer`] made from a closure.
///
/// ```
/// use dmf_core::{Record, Transformed, Transformer, transform_fn};
/// # #[derive(serde::Serialize)] struct Old { id: i64, name: String }
/// # impl Record for Old { fn key(&self) -> String { self.id.to_string() } }
/// # #[derive(serde::Serialize)] struct New { id: i64, name: String }
/// # impl Record for New { fn key(&self) -> String { self.id.to_string() } }
/// let upper = transform_fn(|old: &Old| {
///     if old.name.is_empty() {
///         Transformed::Rejected { reason: "name is empty".into() }
///     } else {
///         Transformed::Mapped(New { id: old.id, name: old.name.to_uppercase() })
///     }
/// });
/// assert_eq!(upper.transform(&Old { id: 1, name: "ann".into() }), Transformed::Mapped(New { id: 1, name: "ANN".into() }));
/// # impl PartialEq for New { fn eq(&self, o: &Self) -> bool { self.id == o.id && self.name == o.name } }
/// # impl std::fmt::Debug for New { fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result { write!(f, "{}", self.name) } }
/// ```
pub fn transform_fn<I, O, F>(f: F) -> FnTransformer<I, O, F>
where
    I: Record,
    O: Record,
    F: Fn(&I) -> Transformed<O> + Send + Sync + 'static,
{
    FnTransformer { f, _types: PhantomData }
}

/// See [`transform_fn`].
pub struct FnTransformer<I, O, F> {
    f: F,
    _types: PhantomData<fn(&I) -> O>,
}

impl<I, O, F> Transformer for FnTransformer<I, O, F>
where
    I: Record,
    O: Record,
    F: Fn(&I) -> Transformed<O> + Send + Sync + 'static,
{
    type Input = I;
    type Output = O;

    fn transform(&self, input: &I) -> Transformed<O> {
        (self.f)(input)
    }
}

/// Passes records through unchanged (for copies where the loader does the mapping).
pub struct Identity<T>(PhantomData<fn(&T) -> T>);

impl<T> Default for Identity<T> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T: Record + Clone> Transformer for Identity<T> {
    type Input = T;
    type Output = T;

    fn transform(&self, input: &T) -> Transformed<T> {
        Transformed::Mapped(input.clone())
    }

    fn pass_through(&self, input: T) -> Result<T, T> {
        Ok(input)
    }
}
