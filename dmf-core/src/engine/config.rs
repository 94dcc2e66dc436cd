//! Engine settings, built and validated once.

use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use super::throttle::RowRateLimit;
use crate::error::{Error, Result};

/// How the batch engine runs a pipeline.
///
/// ```
/// use dmf_core::{EngineConfig, RejectLimit};
/// let config = EngineConfig::builder()
///     .batch_size(5_000)
///     .pipeline_depth(4)
///     .reject_limit(RejectLimit::Count(100))
///     .build()
///     .unwrap();
/// assert_eq!(config.max_rows_in_flight(), 20_000);
/// assert!(EngineConfig::builder().batch_size(0).build().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct EngineConfig {
    batch_size: NonZeroUsize,
    pipeline_depth: NonZeroUsize,
    transform_concurrency: NonZeroUsize,
    retry: RetryPolicy,
    reject_limit: RejectLimit,
    rate_limit: Option<Arc<RowRateLimit>>,
    defer_missing_parents: bool,
    write_timeout: Duration,
    read_timeout: Duration,
}

/// How long reading one batch from the source may go unanswered by default: see
/// [`EngineConfigBuilder::read_timeout`].
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(300);

/// How long one batch's write (and its commit) may go unanswered by default: see
/// [`EngineConfigBuilder::write_timeout`].
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN),
            pipeline_depth: NonZeroUsize::new(4).unwrap_or(NonZeroUsize::MIN),
            transform_concurrency: NonZeroUsize::MIN,
            retry: RetryPolicy::default(),
            reject_limit: RejectLimit::default(),
            rate_limit: None,
            defer_missing_parents: false,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

impl EngineConfig {
    /// Starts from the defaults: batches of 1,000, depth 4, one transform worker, 5 attempts
    /// for transient errors, and at most 10 % rejects once 1,000 rows were read.
    pub fn builder() -> EngineConfigBuilder {
        EngineConfigBuilder::default()
    }

    /// Records per batch.
    pub fn batch_size(&self) -> NonZeroUsize {
        self.batch_size
    }

    /// Batches that may be between reading and committing at once.
    pub fn pipeline_depth(&self) -> NonZeroUsize {
        self.pipeline_depth
    }

    /// Batches transformed at the same time.
    pub fn transform_concurrency(&self) -> NonZeroUsize {
        self.transform_concurrency
    }

    /// Retry policy for transient errors.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    /// When too many rejects stop a migration.
    pub fn reject_limit(&self) -> RejectLimit {
        self.reject_limit
    }

    /// The cap on rows read per second, shared by every migration run with this configuration.
    pub fn rate_limit(&self) -> Option<&Arc<RowRateLimit>> {
        self.rate_limit.as_ref()
    }

    /// True when rows failing with [`ErrorKind::MissingParent`](crate::ErrorKind::MissingParent)
    /// are counted as deferred (for a catch-up pass) rather than rejected.
    pub fn defer_missing_parents(&self) -> bool {
        self.defer_missing_parents
    }

    /// This configuration, deferring rows whose parent is missing (see
    /// [`defer_missing_parents`](Self::defer_missing_parents)) or not. Syncs turn it on when
    /// they have a catch-up pass.
    pub fn with_deferred_missing_parents(mut self, defer: bool) -> Self {
        self.defer_missing_parents = defer;
        self
    }

    /// How long one batch's write may go unanswered before it is abandoned as a transient
    /// failure ([`EngineConfigBuilder::write_timeout`]).
    pub fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    /// How long reading one batch may go unanswered before the read is abandoned as a
    /// transient failure ([`EngineConfigBuilder::read_timeout`]).
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// The bound on rows read but not committed: `pipeline_depth × batch_size`.
    pub fn max_rows_in_flight(&self) -> usize {
        self.pipeline_depth.get().saturating_mul(self.batch_size.get())
    }
}

/// Builder for [`EngineConfig`]; [`build`](Self::build) validates.
#[derive(Debug, Clone)]
pub struct EngineConfigBuilder {
    batch_size: usize,
    pipeline_depth: usize,
    transform_concurrency: usize,
    retry: RetryPolicy,
    reject_limit: RejectLimit,
    max_rows_per_sec: Option<u32>,
    write_timeout: Duration,
    read_timeout: Duration,
}

impl Default for EngineConfigBuilder {
    fn default() -> Self {
        let d = EngineConfig::default();
        Self {
            batch_size: d.batch_size.get(),
            pipeline_depth: d.pipeline_depth.get(),
            transform_concurrency: d.transform_concurrency.get(),
            retry: d.retry,
            reject_limit: d.reject_limit,
            max_rows_per_sec: None,
            write_timeout: d.write_timeout,
            read_timeout: d.read_timeout,
        }
    }
}

impl EngineConfigBuilder {
    /// Records per batch (at least 1).
    pub fn batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows;
        self
    }

    /// Batches between reading and committing at once (at least 1).
    pub fn pipeline_depth(mut self, batches: usize) -> Self {
        self.pipeline_depth = batches;
        self
    }

    /// Batches transformed at the same time (at least 1).
    pub fn transform_concurrency(mut self, batches: usize) -> Self {
        self.transform_concurrency = batches;
        self
    }

    /// The retry policy for transient errors.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// When too many rejects stop a migration.
    pub fn reject_limit(mut self, limit: RejectLimit) -> Self {
        self.reject_limit = limit;
        self
    }

    /// Reads at most `rows` rows per second, across all the migrations of a run (to go easy
    /// on a production source); no cap by default.
    pub fn max_rows_per_sec(mut self, rows: u32) -> Self {
        self.max_rows_per_sec = Some(rows);
        self
    }

    /// How long one batch's write (its statements and its commit) may go without an answer
    /// from the target before it is abandoned as a transient failure: retried with backoff
    /// on a new connection, after asking whether it committed ([`Loader::committed`](crate::Loader::committed)).
    /// When retries run out the run stops, resumable. Default [`DEFAULT_WRITE_TIMEOUT`] (5 min);
    /// a line is logged every 30 s of silence meanwhile.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// How long reading one batch from the source may go unanswered before the read is
    /// abandoned as a transient failure and the source read again from the last batch read,
    /// with backoff; when retries run out the run stops, resumable. Default
    /// [`DEFAULT_READ_TIMEOUT`] (5 min).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<EngineConfig> {
        let positive = |name: &str, value: usize| {
            NonZeroUsize::new(value).ok_or_else(|| Error::Config(format!("{name} must be at least 1, got 0")))
        };
        let config = EngineConfig {
            batch_size: positive("batch_size", self.batch_size)?,
            pipeline_depth: positive("pipeline_depth", self.pipeline_depth)?,
            transform_concurrency: positive("transform_concurrency", self.transform_concurrency)?,
            retry: self.retry,
            reject_limit: self.reject_limit,
            defer_missing_parents: false,
            write_timeout: self.write_timeout,
            read_timeout: self.read_timeout,
            rate_limit: match self.max_rows_per_sec {
                None => None,
                Some(rows) => Some(Arc::new(RowRateLimit::new(
                    NonZeroU32::new(rows)
                        .ok_or_else(|| Error::Config("max_rows_per_sec must be at least 1, got 0".into()))?,
                ))),
            },
        };
        if config.write_timeout.is_zero() || config.read_timeout.is_zero() {
            return Err(Error::Config("write_timeout and read_timeout must be more than zero".into()));
        }
        config.retry.validate()?;
        config.reject_limit.validate()?;
        Ok(config)
    }
}

/// Exponential backoff with jitter for transient errors.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub initial_delay: Duration,
    /// Upper bound of any delay.
    pub max_delay: Duration,
    /// Growth factor between delays.
    pub factor: f32,
    /// Randomise delays so that many workers do not retry in step.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            factor: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::Config("retry max_attempts must be at least 1 (1 means no retry)".into()));
        }
        if self.factor.is_nan() || self.factor < 1.0 {
            return Err(Error::Config(format!("retry factor must be at least 1.0, got {}", self.factor)));
        }
        if self.initial_delay > self.max_delay {
            return Err(Error::Config(format!(
                "retry initial_delay ({:?}) is longer than max_delay ({:?})",
                self.initial_delay, self.max_delay
            )));
        }
        Ok(())
    }
}

/// How many rejects a migration tolerates before it stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RejectLimit {
    /// Any number (every reject still lands in the quarantine).
    Unlimited,
    /// At most this many; one more fails the migration.
    Count(u64),
    /// At most this share of the rows read (0.0 to 1.0), checked once `min_rows` were read.
    Ratio {
        /// The share, for example 0.02 for 2 %.
        max: f64,
        /// Rows to read before the ratio is judged (avoids failing on an unlucky first batch).
        min_rows: u64,
    },
}

impl Default for RejectLimit {
    fn default() -> Self {
        RejectLimit::Ratio { max: 0.10, min_rows: 1000 }
    }
}

impl RejectLimit {
    /// True when `rejected` of `read` rows is over the limit.
    pub fn exceeded(&self, rejected: u64, read: u64) -> bool {
        match *self {
            RejectLimit::Unlimited => false,
            RejectLimit::Count(max) => rejected > max,
            RejectLimit::Ratio { max, min_rows } => read >= min_rows && read > 0 && rejected as f64 > max * read as f64,
        }
    }

    fn validate(&self) -> Result<()> {
        match *self {
            RejectLimit::Ratio { max, .. } if !(0.0..=1.0).contains(&max) => {
                Err(Error::Config(format!("reject ratio must be between 0 and 1, got {max}")))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for RejectLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectLimit::Unlimited => f.write_str("unlimited"),
            RejectLimit::Count(n) => write!(f, "{n} rows"),
            RejectLimit::Ratio { max, min_rows } => write!(f, "{}% of rows, after {min_rows} rows", max * 100.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_settings_are_refused_when_built() {
        assert!(EngineConfig::builder().pipeline_depth(0).build().is_err());
        assert!(EngineConfig::builder().transform_concurrency(0).build().is_err());
        assert!(
            EngineConfig::builder().retry(RetryPolicy { max_attempts: 0, ..RetryPolicy::default() }).build().is_err()
        );
        assert!(EngineConfig::builder().reject_limit(RejectLimit::Ratio { max: 1.5, min_rows: 0 }).build().is_err());
    }

    #[test]
    fn reject_limits() {
        assert!(!RejectLimit::Count(2).exceeded(2, 10));
        assert!(RejectLimit::Count(2).exceeded(3, 10));
        let ratio = RejectLimit::Ratio { max: 0.1, min_rows: 100 };
        assert!(!ratio.exceeded(50, 99), "not judged before min_rows");
        assert!(!ratio.exceeded(10, 100));
        assert!(ratio.exceeded(11, 100));
        assert!(!RejectLimit::Unlimited.exceeded(u64::MAX, 1));
    }
}
