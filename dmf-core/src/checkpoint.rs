//! Resume positions: where a migration stands in its source.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Error, Result, Stage};

/// An extractor's opaque resume position: "everything up to here has been read".
///
/// Extractors choose the content (last key, watermark value, page number), usually JSON made
/// with [`Position::encode`].
///
/// ```
/// use dmf_core::Position;
/// let position = Position::encode(&(42_i64, "b")).unwrap();
/// assert_eq!(position.as_str(), r#"[42,"b"]"#);
/// let (id, tag): (i64, String) = position.decode().unwrap();
/// assert_eq!((id, tag.as_str()), (42, "b"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(String);

impl Position {
    /// Wraps text that an extractor produced.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Serialises `value` as JSON.
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        serde_json::to_string(value)
            .map(Self)
            .map_err(|e| Error::with_source(Stage::Extract, crate::ErrorKind::Fatal, "encoding a resume position", e))
    }

    /// Reads back a value written with [`Position::encode`].
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.0).map_err(|e| {
            Error::with_source(
                Stage::Extract,
                crate::ErrorKind::Fatal,
                format!("resume position `{}` is not what this extractor writes", self.0),
                e,
            )
        })
    }

    /// The position as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a loader stores with each batch, in the same transaction: where to resume.
///
/// Resuming means: extract again from `position` (from the start when `None`) and drop the
/// first `skip` records, which were already handled. `skip` is non-zero only when a batch was
/// committed in parts (after bisecting a failing batch).
///
/// When a migration has read everything, the engine stores a last checkpoint with `done` set
/// (an empty load), so that a run which dies before recording "completed" is not redone: the
/// next run finds `done` and has nothing to do. A forced re-run clears it first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The extractor position to restart from.
    pub position: Option<Position>,
    /// Records after `position` that were already handled.
    pub skip: u64,
    /// Everything was read and committed.
    #[serde(default)]
    pub done: bool,
}

impl Checkpoint {
    /// The checkpoint after a whole batch ending at `position`.
    pub fn at(position: Position) -> Self {
        Self { position: Some(position), skip: 0, done: false }
    }

    /// The checkpoint as stored: the position prefixed with the extractor's
    /// [scope](crate::Extractor::scope), so that a checkpoint written by a different read order
    /// (a full sync, then an incremental one) is recognised and not misread.
    pub fn scoped(&self, scope: Option<&str>) -> Checkpoint {
        let Some(scope) = scope else { return self.clone() };
        let position = match &self.position {
            Some(position) => format!("{scope}{SCOPE_SEPARATOR}{}", position.as_str()),
            None => format!("{scope}{SCOPE_SEPARATOR}"),
        };
        Checkpoint { position: Some(Position::new(position)), ..self.clone() }
    }

    /// Splits a stored checkpoint into its scope and the checkpoint the extractor wrote.
    pub fn unscoped(&self) -> (Option<String>, Checkpoint) {
        let Some((scope, position)) = self.position.as_ref().and_then(|p| p.as_str().split_once(SCOPE_SEPARATOR))
        else {
            return (None, self.clone());
        };
        let position = (!position.is_empty()).then(|| Position::new(position));
        (Some(scope.to_owned()), Checkpoint { position, ..self.clone() })
    }
}

/// Separates a scope from the position in stored checkpoints (the ASCII unit separator, which
/// JSON positions never contain unescaped).
const SCOPE_SEPARATOR: char = '\u{1f}';

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_unscoped_checkpoints_stay_as_they_are() {
        let checkpoint = Checkpoint { position: Some(Position::new("[1,2]")), skip: 3, done: true };
        let stored = checkpoint.scoped(Some("watermark:updated_at"));
        assert_eq!(stored.position.as_ref().unwrap().as_str(), "watermark:updated_at\u{1f}[1,2]");
        assert_eq!(stored.unscoped(), (Some("watermark:updated_at".into()), checkpoint.clone()));
        assert_eq!(checkpoint.scoped(None), checkpoint);
        assert_eq!(checkpoint.unscoped(), (None, checkpoint.clone()));
        let start = Checkpoint::default().scoped(Some("s"));
        assert_eq!(start.unscoped(), (Some("s".into()), Checkpoint::default()));
    }
}
