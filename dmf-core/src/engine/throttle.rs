//! A shared cap on rows read per second, to go easy on a production source.
//!
//! Twenty lines of pacing rather than a crate: `governor`'s `until_n_ready` refuses a batch
//! larger than its burst size, and all that is needed here is "after reading `n` rows, wait
//! until `n / rate` seconds have passed since the previous allowance ended".

use std::num::NonZeroU32;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// At most `rows_per_sec` rows read per second, across every migration sharing it (an
/// [`EngineConfig`](crate::EngineConfig) clones share one). Over any span of `t` seconds the
/// engine reads at most `rows_per_sec × t + batch_size` rows.
#[derive(Debug)]
pub struct RowRateLimit {
    rows_per_sec: NonZeroU32,
    /// When the rows allowed so far have been paid for.
    paid_until: Mutex<Option<Instant>>,
}

impl RowRateLimit {
    /// A cap of `rows_per_sec`.
    pub fn new(rows_per_sec: NonZeroU32) -> Self {
        Self { rows_per_sec, paid_until: Mutex::new(None) }
    }

    /// The cap.
    pub fn rows_per_sec(&self) -> NonZeroU32 {
        self.rows_per_sec
    }

    /// Called after reading `rows` rows: waits until they fit under the cap.
    pub async fn pay(&self, rows: usize) {
        let cost = Duration::from_secs_f64(rows as f64 / f64::from(self.rows_per_sec.get()));
        let until = {
            let mut paid_until = self.paid_until.lock().await;
            let now = Instant::now();
            let until = paid_until.map_or(now, |t| t.max(now)) + cost;
            *paid_until = Some(until);
            until
        };
        tokio::time::sleep_until(until).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_reads_to_the_rate_across_callers() {
        let limit = std::sync::Arc::new(RowRateLimit::new(NonZeroU32::new(1_000).unwrap()));
        let started = Instant::now();
        let a = {
            let limit = std::sync::Arc::clone(&limit);
            tokio::spawn(async move {
                for _ in 0..5 {
                    limit.pay(100).await;
                }
            })
        };
        for _ in 0..5 {
            limit.pay(100).await;
        }
        a.await.unwrap();
        // 1,000 rows at 1,000 rows/s, shared by two readers.
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
