//! Leases: one writer per target. A run claims a lease row in the target's control tables
//! before it writes, renews it while it runs (the heartbeat), and releases it at the end. A
//! second run into the same target finds the lease held and refuses at once, naming the holder,
//! or waits for it; a lease whose holder stopped renewing it is expired, and the next claimant
//! takes it over and marks the holder's run `abandoned`.
//!
//! A lease is a claim on a *scope*: [`TARGET_SCOPE`] for a whole target today; a later
//! scale-out step hands out narrower scopes (a table, a key range) to several workers.
//!
//! Times are the claimant's clock: hosts writing into one target should keep their clocks
//! within a fraction of the lease's time to live (NTP does).

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::names::RunId;
use crate::orchestrator::store::RunStore;

/// The scope of a lease on a whole target.
pub const TARGET_SCOPE: &str = "target";

/// How a lease is held and waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOptions {
    /// What the lease claims ([`TARGET_SCOPE`] by default).
    pub scope: String,
    /// How long a lease lives without a heartbeat (30 s by default); the holder renews it every
    /// third of that.
    pub ttl: Duration,
    /// How long to wait for a lease another run holds before refusing (zero by default: refuse
    /// at once).
    pub wait: Duration,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        Self { scope: TARGET_SCOPE.to_owned(), ttl: Duration::from_secs(30), wait: Duration::ZERO }
    }
}

/// Who asks for a lease, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseClaim {
    /// What is claimed.
    pub scope: String,
    /// The claimant's token, unique per holder (a process may hold several leases).
    pub holder: String,
    /// The claimant's machine.
    pub host: String,
    /// The claimant's process id.
    pub pid: u32,
    /// The run the lease is held for, once it has an id.
    pub run: Option<RunId>,
    /// The claimant's clock now.
    pub now: SystemTime,
    /// How long the lease lives without a heartbeat.
    pub ttl: Duration,
    /// A holder known to be dead (a lease of this very process that was dropped without being
    /// released: its run's future was dropped mid-flight), whose lease may be taken over
    /// before it expires.
    pub dead_holder: Option<String>,
}

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseRecord {
    /// What is claimed.
    pub scope: String,
    /// The holder's token.
    pub holder: String,
    /// The holder's machine.
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
    /// The run it is held for, if it has one yet.
    pub run: Option<RunId>,
    /// When the holder claimed it.
    pub acquired_at: SystemTime,
    /// The holder's last heartbeat.
    pub heartbeat_at: SystemTime,
    /// When it expires without another heartbeat.
    pub expires_at: SystemTime,
}

impl LeaseRecord {
    /// True when the holder stopped renewing it in time.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at <= now
    }
}

impl fmt::Display for LeaseRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.run {
            Some(run) => write!(f, "run {run}")?,
            None => f.write_str("a run starting")?,
        }
        write!(
            f,
            " on host `{}` (pid {}) since {}, last heartbeat {}",
            self.host,
            self.pid,
            utc(self.acquired_at),
            utc(self.heartbeat_at)
        )
    }
}

fn utc(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The answer to a [`LeaseClaim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseClaimed {
    /// The claimant holds the lease now. `expired` is the lease of another holder it took
    /// over because that holder stopped renewing it.
    Taken {
        /// The expired lease taken over, if any.
        expired: Option<LeaseRecord>,
    },
    /// Another holder has a live lease.
    Held(LeaseRecord),
}

/// A held lease, renewed in the background until it is released or dropped.
///
/// When a renewal finds the lease taken by another holder (this process stalled past the
/// lease's time to live), [`lost`](Self::lost) is cancelled: the run must stop writing.
pub struct Lease {
    store: Arc<dyn RunStore>,
    scope: String,
    holder: String,
    lost: CancellationToken,
    stop: CancellationToken,
    heartbeat: Option<JoinHandle<()>>,
    ttl: Duration,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("scope", &self.scope).field("holder", &self.holder).finish_non_exhaustive()
    }
}

/// What [`Lease::acquire`] found on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseAcquired {
    /// The expired lease of a holder that stopped renewing it, taken over.
    pub expired: Option<LeaseRecord>,
    /// Runs recorded as `running` that no live holder was running, now marked `abandoned`.
    pub abandoned: Vec<RunId>,
    /// How long the claimant waited for another holder.
    pub waited: Duration,
}

/// This machine's name as run records and leases show it: the operating system's host name
/// (`gethostname(2)`; a `HOSTNAME` variable, which shells set but do not export and which a
/// user can set to anything, is not consulted), or `unknown` when it has none.
pub fn this_host() -> String {
    let name = gethostname::gethostname();
    let name = name.to_string_lossy();
    let name = name.trim();
    if name.is_empty() { "unknown".into() } else { name.to_owned() }
}

/// This process's random id, part of every holder token it makes.
fn process_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().simple().to_string())
}

/// The holder tokens of this process's leases that are alive (not yet released or dropped).
fn live_holders() -> MutexGuard<'static, HashSet<String>> {
    static LIVE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    LIVE.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fresh holder token, `host:pid:process:lease`, registered as live in this process.
fn new_holder() -> String {
    let token = format!("{}:{}:{}:{}", this_host(), std::process::id(), process_id(), uuid::Uuid::new_v4().simple());
    live_holders().insert(token.clone());
    token
}

/// True when `holder` is a token of this process whose lease is no longer alive here: it was
/// dropped without being released (a run's future dropped mid-flight), so nobody renews it.
fn is_dead_in_this_process(holder: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (_lease, process) = (parts.next(), parts.next());
    process == Some(process_id()) && !live_holders().contains(holder)
}

impl Lease {
    /// Claims the lease of `options.scope` in `store` for a holder on `host`, waiting up to
    /// `options.wait` for another holder to release it (or for its lease to expire), then
    /// marks the runs left `running` by dead holders `abandoned` and starts the heartbeat.
    ///
    /// Fails with [`Error::LeaseHeld`] naming the holder when the wait runs out.
    pub async fn acquire(
        store: Arc<dyn RunStore>,
        options: &LeaseOptions,
        host: &str,
    ) -> Result<(Lease, LeaseAcquired)> {
        let holder = new_holder();
        let started = tokio::time::Instant::now();
        let mut waiting_said = false;
        let mut dead_holder = None;
        let expired = loop {
            let claim = LeaseClaim {
                scope: options.scope.clone(),
                holder: holder.clone(),
                host: host.to_owned(),
                pid: std::process::id(),
                run: None,
                now: SystemTime::now(),
                ttl: options.ttl,
                dead_holder: dead_holder.take(),
            };
            let claimed = store.claim_lease(&claim).await.inspect_err(|_| {
                live_holders().remove(&holder);
            })?;
            match claimed {
                LeaseClaimed::Taken { expired } => break expired,
                LeaseClaimed::Held(current)
                    if claim.dead_holder.is_none() && is_dead_in_this_process(&current.holder) =>
                {
                    dead_holder = Some(current.holder);
                }
                LeaseClaimed::Held(current) => {
                    let waited = started.elapsed();
                    if waited >= options.wait {
                        live_holders().remove(&holder);
                        return Err(Error::LeaseHeld { scope: options.scope.clone(), holder: Box::new(current) });
                    }
                    if !waiting_said {
                        tracing::warn!(scope = %options.scope, "waiting for the lease held by {current}");
                        waiting_said = true;
                    }
                    let poll = (options.ttl / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
                    tokio::time::sleep(poll.min(options.wait - waited)).await;
                }
            }
        };
        let mut acquired = LeaseAcquired { expired, abandoned: Vec::new(), waited: started.elapsed() };
        if options.scope == TARGET_SCOPE {
            acquired.abandoned = abandon_running_runs(store.as_ref(), acquired.expired.as_ref()).await?;
        }
        let lease = Lease::start(store, options.scope.clone(), holder, options.ttl);
        Ok((lease, acquired))
    }

    fn start(store: Arc<dyn RunStore>, scope: String, holder: String, ttl: Duration) -> Lease {
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let heartbeat =
            tokio::spawn(heartbeat(Arc::clone(&store), scope.clone(), holder.clone(), ttl, lost.clone(), stop.clone()));
        Lease { store, scope, holder, lost, stop, heartbeat: Some(heartbeat), ttl }
    }

    /// Records the run the lease is held for, so that a second claimant can name it.
    pub async fn attach(&self, run: RunId) -> Result<()> {
        let renewed = self.store.renew_lease(&self.scope, &self.holder, Some(run), SystemTime::now(), self.ttl).await?;
        if !renewed {
            self.lost.cancel();
            return Err(Error::LeaseLost { scope: self.scope.clone() });
        }
        Ok(())
    }

    /// Cancelled when the lease was found taken by another holder.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// The holder's token.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Stops the heartbeat and deletes the lease row, so that the next run need not wait.
    pub async fn release(mut self) -> Result<()> {
        self.stop_heartbeat().await;
        let released = self.store.release_lease(&self.scope, &self.holder).await;
        live_holders().remove(&self.holder);
        released
    }

    async fn stop_heartbeat(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.heartbeat.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Dropped without `release` (a panic, a run's future dropped mid-flight): stop renewing;
        // the lease expires after its time to live, as a killed process's does, and the next
        // run takes it over then. Releasing here could let a second run in while this one's
        // last statement is still in flight.
        self.stop.cancel();
        if let Some(task) = self.heartbeat.take() {
            task.abort();
        }
        // The next claim in this process may take the lease over at once.
        live_holders().remove(&self.holder);
    }
}

async fn heartbeat(
    store: Arc<dyn RunStore>,
    scope: String,
    holder: String,
    ttl: Duration,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let every = ttl / 3;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match store.renew_lease(&scope, &holder, None, SystemTime::now(), ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(%scope, "the lease was taken over by another run: stopping this one");
                lost.cancel();
                return;
            }
            // The target did not answer: the next beat tries again; if none gets through
            // before the lease expires, another run may take it over, and the next successful
            // renewal reports the loss.
            Err(error) => tracing::warn!(%scope, error = %error.chain(), "could not renew the lease"),
        }
    }
}

/// Marks `abandoned` the runs recorded as `running` that no live holder runs: the caller
/// holds the target's lease, so none of them can still be writing.
async fn abandon_running_runs(store: &dyn RunStore, expired: Option<&LeaseRecord>) -> Result<Vec<RunId>> {
    let mut abandoned = Vec::new();
    for run in store.runs(RUNS_CHECKED_FOR_ABANDONMENT).await? {
        if run.status != crate::orchestrator::RunStatus::Running {
            continue;
        }
        let why = match expired {
            Some(lease) if lease.run == Some(run.id) => format!(
                "abandoned: its process (host `{}`, pid {}) stopped renewing its lease at {}",
                lease.host,
                lease.pid,
                utc(lease.heartbeat_at)
            ),
            _ => format!("abandoned: its process (host `{}`) stopped without recording an end", run.host),
        };
        tracing::warn!(run = %run.id, "run {} {why}; its work resumes from its checkpoints", run.id);
        store.finish_run(run.id, crate::orchestrator::RunStatus::Abandoned, Some(&why)).await?;
        abandoned.push(run.id);
    }
    Ok(abandoned)
}

/// How many of the latest runs a new lease holder looks at for ones left `running`.
const RUNS_CHECKED_FOR_ABANDONMENT: usize = 100;
