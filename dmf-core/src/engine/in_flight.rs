//! Rows read but not yet committed: the quantity the engine keeps bounded.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::names::MigrationName;
use crate::progress::metrics;

/// Current and peak rows in flight, mirrored to the `dmf_rows_in_flight` gauge.
pub(crate) struct InFlight {
    current: AtomicU64,
    peak: AtomicU64,
    gauge: ::metrics::Gauge,
}

impl InFlight {
    pub(crate) fn new(name: &MigrationName) -> Self {
        Self {
            current: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            gauge: ::metrics::gauge!(metrics::ROWS_IN_FLIGHT, "migration" => name.to_string()),
        }
    }

    pub(crate) fn add(&self, rows: u64) {
        let now = self.current.fetch_add(rows, Ordering::AcqRel) + rows;
        self.peak.fetch_max(now, Ordering::AcqRel);
        self.gauge.set(now as f64);
    }

    pub(crate) fn remove(&self, rows: u64) {
        let now = self.current.fetch_sub(rows, Ordering::AcqRel).saturating_sub(rows);
        self.gauge.set(now as f64);
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Acquire)
    }
}
