//! An in-memory [`RunStore`].

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use dmf_core::{
    BackupRecord, Error, LeaseClaim, LeaseClaimed, LeaseRecord, MigrationName, MigrationRecord, MigrationStatus,
    Reject, RejectRecord, Result, RunId, RunRecord, RunStatus, RunStore, Stage,
};

/// Runs, migration records and rejects kept in memory. It can be told to fail, to test how
/// callers handle an unreachable store.
#[derive(Default)]
pub struct MemoryRunStore {
    state: Mutex<StoreState>,
    refusals: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct StoreState {
    runs: Vec<RunRecord>,
    records: Vec<MigrationRecord>,
    rejects: Vec<RejectRecord>,
    leases: Vec<LeaseRecord>,
    failing: bool,
}

impl MemoryRunStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, StoreState>> {
        let state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.failing {
            return Err(Error::transient(Stage::RunStore, "the in-memory run store was told to fail"));
        }
        Ok(state)
    }

    /// Makes every call fail with a transient error (or work again).
    pub fn set_failing(&self, failing: bool) {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).failing = failing;
    }

    /// Every reject recorded, in order.
    pub fn all_rejects(&self) -> Vec<RejectRecord> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).rejects.clone()
    }

    /// Waits until a lease claim has been refused (another holder had it): a test's event that
    /// a second run is waiting for the lease.
    pub async fn lease_refused(&self) {
        let mut refusals = self.refusals.subscribe();
        // The sender lives as long as `self`, so the wait ends only by a refusal.
        let _ = refusals.wait_for(|n| *n > 0).await;
    }

    /// Every migration record, in the order they were first saved.
    pub fn all_records(&self) -> Vec<MigrationRecord> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).records.clone()
    }
}

#[async_trait]
impl RunStore for MemoryRunStore {
    async fn start_run(&self, plan: &[MigrationName], host: &str) -> Result<RunId> {
        let mut state = self.lock()?;
        let id = RunId(state.runs.len() as i64 + 1);
        state.runs.push(RunRecord {
            id,
            status: RunStatus::Running,
            plan: plan.to_vec(),
            host: host.to_owned(),
            started_at: SystemTime::now(),
            finished_at: None,
            backup: None,
            error: None,
        });
        Ok(id)
    }

    async fn finish_run(&self, run: RunId, status: RunStatus, error: Option<&str>) -> Result<()> {
        let mut state = self.lock()?;
        let record = state
            .runs
            .iter_mut()
            .find(|r| r.id == run)
            .ok_or_else(|| Error::fatal(Stage::RunStore, format!("no run {run} to finish")))?;
        record.status = status;
        record.finished_at = Some(SystemTime::now());
        record.error = error.map(str::to_owned);
        Ok(())
    }

    async fn record_backup(&self, run: RunId, backup: &BackupRecord) -> Result<()> {
        let mut state = self.lock()?;
        if let Some(record) = state.runs.iter_mut().find(|r| r.id == run) {
            record.backup = Some(backup.clone());
        }
        Ok(())
    }

    async fn save_migration_record(&self, record: &MigrationRecord) -> Result<()> {
        let mut state = self.lock()?;
        match state.records.iter_mut().find(|r| r.run == record.run && r.migration == record.migration) {
            Some(existing) => *existing = record.clone(),
            None => state.records.push(record.clone()),
        }
        Ok(())
    }

    async fn latest_record(&self, migration: &MigrationName) -> Result<Option<MigrationRecord>> {
        let state = self.lock()?;
        Ok(state
            .records
            .iter()
            .filter(|r| r.migration == *migration)
            .filter(|r| !matches!(r.status, MigrationStatus::Pending | MigrationStatus::Skipped))
            .max_by_key(|r| r.run)
            .cloned())
    }

    async fn run(&self, run: RunId) -> Result<Option<RunRecord>> {
        Ok(self.lock()?.runs.iter().find(|r| r.id == run).cloned())
    }

    async fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        Ok(self.lock()?.runs.iter().rev().take(limit).cloned().collect())
    }

    async fn migration_records(&self, run: RunId) -> Result<Vec<MigrationRecord>> {
        let state = self.lock()?;
        let mut records: Vec<MigrationRecord> = state.records.iter().filter(|r| r.run == run).cloned().collect();
        let plan = state.runs.iter().find(|r| r.id == run).map(|r| r.plan.as_slice()).unwrap_or_default();
        dmf_core::sort_in_plan_order(&mut records, plan);
        Ok(records)
    }

    async fn record_rejects(&self, run: RunId, migration: &MigrationName, rejects: &[Reject]) -> Result<()> {
        let mut state = self.lock()?;
        state.rejects.extend(rejects.iter().map(|reject| RejectRecord {
            run,
            migration: migration.clone(),
            reject: reject.clone(),
        }));
        Ok(())
    }

    async fn rejects(
        &self,
        run: RunId,
        migration: Option<&MigrationName>,
        limit: usize,
        offset: usize,
    ) -> Result<Vec<RejectRecord>> {
        let state = self.lock()?;
        Ok(state
            .rejects
            .iter()
            .filter(|r| r.run == run && migration.is_none_or(|m| r.migration == *m))
            .skip(offset)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn claim_lease(&self, claim: &LeaseClaim) -> Result<LeaseClaimed> {
        let mut state = self.lock()?;
        let claimed = LeaseRecord {
            scope: claim.scope.clone(),
            holder: claim.holder.clone(),
            host: claim.host.clone(),
            pid: claim.pid,
            run: claim.run,
            acquired_at: claim.now,
            heartbeat_at: claim.now,
            expires_at: claim.now.checked_add(claim.ttl).unwrap_or(claim.now),
        };
        match state.leases.iter_mut().find(|l| l.scope == claim.scope) {
            None => state.leases.push(claimed),
            Some(lease) if lease.holder == claim.holder => {
                lease.heartbeat_at = claimed.heartbeat_at;
                lease.expires_at = claimed.expires_at;
                lease.run = claimed.run.or(lease.run);
            }
            Some(lease)
                if lease.is_expired(claim.now) || claim.dead_holder.as_deref() == Some(lease.holder.as_str()) =>
            {
                let expired = std::mem::replace(lease, claimed);
                return Ok(LeaseClaimed::Taken { expired: Some(expired) });
            }
            Some(lease) => {
                let held = lease.clone();
                drop(state);
                self.refusals.send_modify(|n| *n += 1);
                return Ok(LeaseClaimed::Held(held));
            }
        }
        Ok(LeaseClaimed::Taken { expired: None })
    }

    async fn renew_lease(
        &self,
        scope: &str,
        holder: &str,
        run: Option<RunId>,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<bool> {
        let mut state = self.lock()?;
        let Some(lease) = state.leases.iter_mut().find(|l| l.scope == scope && l.holder == holder) else {
            return Ok(false);
        };
        lease.heartbeat_at = now;
        lease.expires_at = now.checked_add(ttl).unwrap_or(now);
        lease.run = run.or(lease.run);
        Ok(true)
    }

    async fn release_lease(&self, scope: &str, holder: &str) -> Result<()> {
        self.lock()?.leases.retain(|l| !(l.scope == scope && l.holder == holder));
        Ok(())
    }

    async fn lease(&self, scope: &str) -> Result<Option<LeaseRecord>> {
        Ok(self.lock()?.leases.iter().find(|l| l.scope == scope).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_passes_the_conformance_suite() {
        crate::conformance::run_store(&MemoryRunStore::new()).await;
    }

    #[tokio::test]
    async fn the_memory_store_keeps_leases_as_the_conformance_suite_says() {
        crate::conformance::leases(&MemoryRunStore::new()).await;
    }
}
