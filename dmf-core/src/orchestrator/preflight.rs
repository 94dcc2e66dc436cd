//! Pre-flight checks: everything that must hold before any data moves.

use std::fmt;

use async_trait::async_trait;

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Fine.
    Passed,
    /// Worth reading, does not stop the run.
    Warning,
    /// Stops the run before any write.
    Failed,
}

/// One check's outcome and what it found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckOutcome {
    /// The check's name.
    pub check: String,
    /// Passed, warning or failed.
    pub status: CheckStatus,
    /// What it found, in a sentence.
    pub detail: String,
}

impl CheckOutcome {
    /// A passed check.
    pub fn passed(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { check: check.into(), status: CheckStatus::Passed, detail: detail.into() }
    }

    /// A warning.
    pub fn warning(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { check: check.into(), status: CheckStatus::Warning, detail: detail.into() }
    }

    /// A failed check.
    pub fn failed(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { check: check.into(), status: CheckStatus::Failed, detail: detail.into() }
    }
}

/// A check run before any data moves (connectivity, replica role, control tables, schema).
/// One check may report several findings (a database's pre-flight covers connectivity, role
/// and control tables).
///
/// Stored as `Box<dyn PreflightCheck>`, so it uses `async-trait`.
#[async_trait]
pub trait PreflightCheck: Send + Sync {
    /// Runs the check.
    async fn check(&self) -> Vec<CheckOutcome>;
}

/// Every check's outcome, printable as a readable table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreflightReport {
    /// The outcomes, in the order the checks ran.
    pub outcomes: Vec<CheckOutcome>,
}

impl PreflightReport {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.status != CheckStatus::Failed)
    }
}

impl fmt::Display for PreflightReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.outcomes.iter().map(|o| o.check.len()).max().unwrap_or(0);
        for outcome in &self.outcomes {
            let mark = match outcome.status {
                CheckStatus::Passed => "ok  ",
                CheckStatus::Warning => "warn",
                CheckStatus::Failed => "FAIL",
            };
            writeln!(f, "  [{mark}] {:<width$}  {}", outcome.check, outcome.detail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_reads_as_a_table() {
        let report = PreflightReport {
            outcomes: vec![
                CheckOutcome::passed("connectivity", "target answered in 2 ms"),
                CheckOutcome::failed("replica role", "target is in recovery (a standby): refusing to write"),
            ],
        };
        assert!(!report.passed());
        assert_eq!(
            report.to_string(),
            "  [ok  ] connectivity  target answered in 2 ms\n  [FAIL] replica role  target is in recovery (a standby): refusing to write\n"
        );
    }
}
