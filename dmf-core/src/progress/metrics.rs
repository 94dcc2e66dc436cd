//! The metrics DMF records through the [`metrics`] facade. Install any recorder (a
//! Prometheus exporter, for example) to collect them; without one they cost almost nothing.
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `dmf_rows_total` | counter | `migration`, `outcome` (`read`, `inserted`, `updated`, `unchanged`, `deleted`, `skipped`, `rejected`) | records by what became of them |
//! | `dmf_batches_total` | counter | `migration` | batches committed |
//! | `dmf_batch_seconds` | histogram | `migration`, `stage` (`transform`, `load`) | time a batch spent in a stage |
//! | `dmf_retries_total` | counter | `migration`, `stage` (`extract`, `load`) | transient failures retried |
//! | `dmf_rows_in_flight` | gauge | `migration` | records read but not yet committed |
//! | `dmf_migrations_total` | counter | `status` (`completed`, `failed`, `skipped`, `rolled_back`) | migrations finished |
//! | `dmf_runs_total` | counter | `status` (`completed`, `failed`) | orchestrator runs finished |

/// Records by outcome.
pub const ROWS_TOTAL: &str = "dmf_rows_total";
/// Batches committed.
pub const BATCHES_TOTAL: &str = "dmf_batches_total";
/// Seconds a batch spent in a stage.
pub const BATCH_SECONDS: &str = "dmf_batch_seconds";
/// Transient failures retried.
pub const RETRIES_TOTAL: &str = "dmf_retries_total";
/// Records read but not yet committed.
pub const ROWS_IN_FLIGHT: &str = "dmf_rows_in_flight";
/// Migrations finished, by status.
pub const MIGRATIONS_TOTAL: &str = "dmf_migrations_total";
/// Runs finished, by status.
pub const RUNS_TOTAL: &str = "dmf_runs_total";

/// Every metric name above, for exporters and tests.
pub const ALL: [&str; 7] =
    [ROWS_TOTAL, BATCHES_TOTAL, BATCH_SECONDS, RETRIES_TOTAL, ROWS_IN_FLIGHT, MIGRATIONS_TOTAL, RUNS_TOTAL];
