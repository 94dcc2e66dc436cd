//! A [`Notifier`] that remembers what it was told.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dmf_core::{Error, Notifier, Result, RunSummary, Stage};

/// Keeps every run summary it is sent; clones share them. Can be told to fail.
#[derive(Clone, Default)]
pub struct RecordingNotifier {
    sent: Arc<Mutex<Vec<RunSummary>>>,
    failing: bool,
}

impl RecordingNotifier {
    /// A notifier that records.
    pub fn new() -> Self {
        Self::default()
    }

    /// A notifier that records and then fails, to prove a failing notifier does not fail a run.
    pub fn failing() -> Self {
        Self { failing: true, ..Self::default() }
    }

    /// The summaries sent so far.
    pub fn sent(&self) -> Vec<RunSummary> {
        self.sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn notify(&self, summary: &RunSummary) -> Result<()> {
        self.sent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(summary.clone());
        if self.failing {
            return Err(Error::transient(Stage::Notify, "the recording notifier was told to fail"));
        }
        Ok(())
    }
}
