//! Retrying transient failures with exponential backoff and jitter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use super::config::RetryPolicy;
use crate::error::{Error, Result, Stage};
use crate::names::MigrationName;
use crate::progress::metrics;

/// Decides, after each failure of one operation, whether to try again (after a backoff delay)
/// or give up. A loop owns the operation, so it can borrow anything mutably:
///
/// ```ignore
/// let mut retry = Retrier::new(..);
/// let value = loop {
///     match loader.checkpoint(name).await {
///         Ok(value) => break value,
///         Err(error) => retry.after(error).await?,
///     }
/// };
/// ```
pub(crate) struct Retrier<'a> {
    policy: &'a RetryPolicy,
    stage: Stage,
    migration: &'a MigrationName,
    cancel: &'a CancellationToken,
    retries: &'a AtomicU64,
    delays: Box<dyn Iterator<Item = Duration> + Send>,
    attempts: u32,
}

impl<'a> Retrier<'a> {
    pub(crate) fn new(
        policy: &'a RetryPolicy,
        stage: Stage,
        migration: &'a MigrationName,
        cancel: &'a CancellationToken,
        retries: &'a AtomicU64,
    ) -> Self {
        Self { policy, stage, migration, cancel, retries, delays: Box::new(backoff(policy)), attempts: 0 }
    }

    /// Starts a fresh series of attempts (after a success).
    pub(crate) fn reset(&mut self) {
        if self.attempts > 0 {
            self.attempts = 0;
            self.delays = Box::new(backoff(self.policy));
        }
    }

    /// Called with the error of a failed attempt: returns `Ok(())` after the backoff delay when
    /// the operation should be tried again, or the error to give up with.
    pub(crate) async fn after(&mut self, error: Error) -> Result<()> {
        self.attempts += 1;
        if !error.is_transient() {
            return Err(error);
        }
        let Some(delay) = self.delays.next().filter(|_| self.attempts < self.policy.max_attempts) else {
            return Err(Error::RetriesExhausted {
                stage: self.stage,
                attempts: self.attempts,
                source: Box::new(error),
            });
        };
        tracing::warn!(
            migration = %self.migration, stage = %self.stage, attempt = self.attempts, ?delay,
            error = %error.chain(), "transient failure, retrying"
        );
        ::metrics::counter!(metrics::RETRIES_TOTAL, "migration" => self.migration.to_string(), "stage" => self.stage.to_string())
            .increment(1);
        self.retries.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            () = self.cancel.cancelled() => Err(Error::Cancelled { migration: self.migration.clone() }),
            () = tokio::time::sleep(delay) => Ok(()),
        }
    }
}

/// The delays between attempts of `policy`.
pub(crate) fn backoff(policy: &RetryPolicy) -> impl Iterator<Item = Duration> + Send + 'static {
    let retries = usize::try_from(policy.max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    let builder = ExponentialBuilder::default()
        .with_min_delay(policy.initial_delay)
        .with_max_delay(policy.max_delay)
        .with_factor(policy.factor)
        .with_max_times(retries);
    if policy.jitter { builder.with_jitter().build() } else { builder.build() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            factor: 2.0,
            jitter: false,
        }
    }

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let delays: Vec<_> = backoff(&policy(6)).collect();
        let ms = Duration::from_millis;
        assert_eq!(delays, vec![ms(1), ms(2), ms(4), ms(4), ms(4)]);
    }

    #[test]
    fn jitter_stays_within_twice_the_delay() {
        let jittered = RetryPolicy { jitter: true, ..policy(4) };
        let plain: Vec<_> = backoff(&policy(4)).collect();
        for (with, without) in backoff(&jittered).zip(plain) {
            assert!(with >= without && with <= without * 2, "{with:?} vs {without:?}");
        }
    }

    #[tokio::test]
    async fn gives_up_on_non_transient_errors_and_after_the_last_attempt() {
        let (name, cancel, retries) = (MigrationName::new("m"), CancellationToken::new(), AtomicU64::new(0));
        let policy = policy(3);
        let mut retry = Retrier::new(&policy, Stage::Load, &name, &cancel, &retries);
        assert!(matches!(retry.after(Error::data(Stage::Load, "bad row")).await, Err(Error::Stage { .. })));

        let mut retry = Retrier::new(&policy, Stage::Load, &name, &cancel, &retries);
        assert!(retry.after(Error::transient(Stage::Load, "reset")).await.is_ok());
        assert!(retry.after(Error::transient(Stage::Load, "reset")).await.is_ok());
        let last = retry.after(Error::transient(Stage::Load, "reset")).await;
        assert!(matches!(last, Err(Error::RetriesExhausted { attempts: 3, .. })), "{last:?}");
        assert_eq!(retries.load(Ordering::Relaxed), 2);
    }
}
