//! [`Writer`]: the one connection through which a process writes a SQLite file, and the group
//! commit of batches loaded without per-row foreign-key checks.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use dmf_core::{Error, Result, Stage};
use rusqlite::Connection;

use crate::connection::{blocking, open};
use crate::error;

/// Page cache of the writer's connection, in KiB (SQLite's default is 2 MiB): large enough to
/// keep the index pages of a large table's load in memory (inserts by key touch the right edge
/// of each index, a secondary index everywhere). Allocated only as pages are read.
const CACHE_KIB: u32 = 32 * 1024;

/// The writer's write-ahead log is checkpointed into the database once it holds this many pages
/// (64 MiB; SQLite's default is 1,000, 4 MiB): a large load checkpoints, and syncs the file,
/// 16 times less often, and a page written by several commits in between is copied once.
const WAL_PAGES: i64 = 16_384;

/// Prepared statements kept on the writer's connection: the loaders sharing it each cache a few.
const STATEMENTS: usize = 64;

/// When a group commits: once it holds `rows` rows, is `age` old, or no batch joined it for
/// `idle` (the flusher thread looks that often).
#[derive(Debug, Clone, Copy)]
struct GroupLimits {
    rows: u64,
    age: Duration,
    idle: Duration,
}

/// Large enough that a commit's rewrite of the touched pages is paid once per many batches,
/// small enough that a crash loses little work and other processes wait at most a few seconds
/// for the write lock.
const GROUP_LIMITS: GroupLimits =
    GroupLimits { rows: 100_000, age: Duration::from_secs(3), idle: Duration::from_millis(100) };

/// The one connection through which a process writes a SQLite file: every loader of a
/// [`SqliteDatabase`](crate::SqliteDatabase) (and its clones and snapshot handles) takes turns
/// on it, a batch at a time.
///
/// SQLite has one writer per file anyway. Loaders on connections of their own would wait for
/// the write lock in the busy handler, which sleeps in steps of up to 100 ms and so wakes late,
/// and each would find its page cache stale after another connection's commit (the cache is
/// per connection, dropped when the file changed under it). Taking turns on one connection
/// hands the lock over at once and keeps the loaded tables' pages cached between batches.
///
/// # Group commit
///
/// A batch written without per-row foreign-key checks (the fast path of a `full` sync) joins
/// the *group*: one transaction holding the batches of every such loader, each batch with its
/// checkpoint in a savepoint of its own. The group commits once it holds 100,000 rows, is
/// 3 seconds old, has been idle for 100 ms (a thread of the writer looks), with a
/// migration's last batch (its `done` checkpoint: a completed migration's rows are always
/// committed), before any other kind of turn, and when the writer is dropped. A batch that fails
/// is rolled back to its savepoint alone.
///
/// A batch in the group is committed or lost together with its checkpoint, as before: a crash
/// loses at most the open group, and the resumed run starts from the checkpoints that were
/// committed. Committing per batch would cost far more: every commit writes each page the batch
/// touched to the write-ahead log again, and a batch of inserts into a secondary index in random
/// order touches nearly as many index pages as it has rows.
///
/// Should the group's commit fail, every batch in it is lost: the loaders that added one get a
/// fatal error at their next turn, so that none of them goes on to store a checkpoint past
/// rows that are not there.
///
/// Batches checked row by row are never grouped (a deferred foreign key would otherwise fail
/// the whole group at its commit): each is a transaction of its own, after the open group is
/// committed.
#[derive(Debug)]
pub(crate) struct Writer {
    path: PathBuf,
    limits: GroupLimits,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    connection: Option<Connection>,
    /// `PRAGMA foreign_keys` as last set on the connection.
    foreign_keys: Option<bool>,
    group: Option<Group>,
    /// Groups are numbered from 1, in the order they open.
    last_group: u64,
    /// Groups whose commit failed, with the error.
    lost: Vec<(u64, String)>,
    flusher_started: bool,
}

/// The open transaction holding grouped batches.
#[derive(Debug)]
struct Group {
    number: u64,
    rows: u64,
    opened: Instant,
    last_batch: Instant,
}

/// What a loader knows about its grouped batches: the group holding its latest one, until that
/// group is known to be committed.
#[derive(Debug, Default)]
pub(crate) struct Pending(Option<u64>);

/// How a batch is written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchMode {
    /// `PRAGMA foreign_keys` for the batch; off means the batch may join the group.
    pub(crate) foreign_keys: bool,
    /// The migration's last batch: the group commits with it.
    pub(crate) last: bool,
}

impl Writer {
    /// No connection yet: opened on first use.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, limits: GROUP_LIMITS, state: Mutex::new(State::default()) }
    }

    /// Writes one batch: `work` runs inside a transaction (the group's savepoint, or a
    /// transaction of its own) and returns its result and the rows it wrote.
    pub(crate) fn write_batch<T>(
        self: &Arc<Self>,
        mode: BatchMode,
        pending: &mut Pending,
        work: impl FnOnce(&Connection) -> Result<(T, u64)>,
    ) -> Result<T> {
        blocking(|| {
            let mut state = self.lock();
            state.check_pending(pending)?;
            let grouped = !mode.foreign_keys;
            if !grouped {
                state.commit_group(&self.path, pending)?;
            }
            state.set_foreign_keys(&self.path, mode.foreign_keys)?;
            if !grouped {
                return state.alone(&self.path, work);
            }
            let opened = state.group.is_none();
            let result = state.in_group(&self.path, pending, work);
            if opened && state.group.is_some() && !state.flusher_started {
                state.flusher_started = true;
                start_flusher(Arc::downgrade(self), self.limits.idle);
            }
            let result = result?;
            let limits = self.limits;
            let full = state.group.as_ref().is_some_and(|g| g.rows >= limits.rows || g.opened.elapsed() >= limits.age);
            if mode.last || full {
                state.commit_group(&self.path, pending)?;
            }
            Ok(result)
        })
    }

    /// Runs `work` on the connection outside any transaction, after the open group is
    /// committed (reading or clearing a checkpoint, replaying an undo log).
    pub(crate) fn run<T>(&self, pending: &mut Pending, work: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        blocking(|| {
            let mut state = self.lock();
            state.check_pending(pending)?;
            state.commit_group(&self.path, pending)?;
            let connection = state.connection(&self.path)?;
            work(connection)
        })
    }

    /// Commits the open group when it has been idle or open long enough.
    fn flush_if_due(&self) {
        let mut state = self.lock();
        let limits = self.limits;
        let due = state
            .group
            .as_ref()
            .is_some_and(|g| g.last_batch.elapsed() >= limits.idle || g.opened.elapsed() >= limits.age);
        if due {
            // A failure is recorded in `lost`: the loaders with batches in the group learn it.
            let _ = state.commit_group(&self.path, &mut Pending::default());
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another turn left at most a savepoint or transaction that was not
        // released; `State` notices an open transaction it does not know of (see `connection`).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Writer {
    /// Commits the open group: its batches were reported written.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        // A failure is logged where it happens; nobody is left to tell.
        let _ = state.commit_group(&self.path, &mut Pending::default());
    }
}

impl State {
    /// The connection, opened (with a larger page and statement cache) when there is none.
    fn connection(&mut self, path: &Path) -> Result<&mut Connection> {
        if let Some(connection) = &self.connection {
            if self.group.is_none() && !connection.is_autocommit() {
                // Left inside a transaction by a panicking turn: start over.
                self.connection = None;
                self.foreign_keys = None;
            }
        }
        match &mut self.connection {
            Some(connection) => Ok(connection),
            empty => {
                let connection = open(path)?;
                let configured = connection
                    .pragma_update(None, "cache_size", -i64::from(CACHE_KIB))
                    .and_then(|()| connection.pragma_update(None, "wal_autocheckpoint", WAL_PAGES));
                configured.map_err(|e| {
                    error::map(Stage::Load, format!("configuring the writer of `{}`", path.display()), e)
                })?;
                connection.set_prepared_statement_cache_capacity(STATEMENTS);
                Ok(empty.insert(connection))
            }
        }
    }

    /// Fails when a group holding one of the loader's batches was lost.
    fn check_pending(&self, pending: &Pending) -> Result<()> {
        let Some(number) = pending.0 else { return Ok(()) };
        match self.lost.iter().find(|(lost, _)| *lost == number) {
            Some((_, why)) => Err(Error::fatal(
                Stage::Load,
                format!(
                    "batches this loader reported written were lost when their group commit failed ({why}); \
                     the next run resumes from the last committed checkpoint"
                ),
            )),
            None => Ok(()),
        }
    }

    fn set_foreign_keys(&mut self, path: &Path, on: bool) -> Result<()> {
        if self.foreign_keys == Some(on) {
            return Ok(());
        }
        let statement = if on { "PRAGMA foreign_keys = ON" } else { "PRAGMA foreign_keys = OFF" };
        self.connection(path)?.execute_batch(statement).map_err(|e| {
            error::map(Stage::Load, format!("setting per-row foreign-key checks on `{}`", path.display()), e)
        })?;
        self.foreign_keys = Some(on);
        Ok(())
    }

    /// Writes a batch in a transaction of its own.
    fn alone<T>(&mut self, path: &Path, work: impl FnOnce(&Connection) -> Result<(T, u64)>) -> Result<T> {
        let context = |e| error::map(Stage::Load, format!("writing a batch into `{}`", path.display()), e);
        let connection = self.connection(path)?;
        let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(context)?;
        let (result, _) = work(&tx)?;
        tx.commit().map_err(context)?;
        Ok(result)
    }

    /// Writes a batch in a savepoint of the group, opening the group when none is.
    fn in_group<T>(
        &mut self,
        path: &Path,
        pending: &mut Pending,
        work: impl FnOnce(&Connection) -> Result<(T, u64)>,
    ) -> Result<T> {
        let context = |e| error::map(Stage::Load, format!("writing a batch into `{}`", path.display()), e);
        if self.group.is_none() {
            self.connection(path)?.execute_batch("BEGIN IMMEDIATE").map_err(context)?;
            self.last_group += 1;
            let now = Instant::now();
            self.group = Some(Group { number: self.last_group, rows: 0, opened: now, last_batch: now });
        }
        let connection = self.connection(path)?;
        connection.execute_batch("SAVEPOINT dmf_batch").map_err(context)?;
        match work(connection) {
            Ok((result, rows)) => {
                connection.execute_batch("RELEASE dmf_batch").map_err(context)?;
                if let Some(group) = &mut self.group {
                    group.rows += rows;
                    group.last_batch = Instant::now();
                    pending.0 = Some(group.number);
                }
                Ok(result)
            }
            Err(error) => {
                if connection.is_autocommit() {
                    // SQLite rolled the whole transaction back (I/O error, disk full): the
                    // group is gone, with any earlier batch of this loader in it.
                    self.lose_group(&error);
                    self.check_pending(pending)?;
                    return Err(error);
                }
                let undone = connection.execute_batch("ROLLBACK TO dmf_batch; RELEASE dmf_batch");
                if let Err(undo) = undone {
                    tracing::warn!(error = %undo, "rolling back a failed batch to its savepoint failed; dropping the group");
                    let _ = connection.execute_batch("ROLLBACK");
                    self.lose_group(&error);
                }
                Err(error)
            }
        }
    }

    /// Commits the open group, if any. A failure loses it (see [`Writer`]) and is an error only
    /// for a loader with a batch in it (`pending`).
    fn commit_group(&mut self, path: &Path, pending: &mut Pending) -> Result<()> {
        let Some(group) = self.group.take() else { return Ok(()) };
        let Some(connection) = &self.connection else { return Ok(()) };
        let committed = if cfg!(test) && fail_commit::take() {
            Err(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR), None))
        } else {
            connection.execute_batch("COMMIT")
        };
        match committed {
            Ok(()) => {
                if pending.0 == Some(group.number) {
                    pending.0 = None;
                }
                tracing::debug!(group = group.number, rows = group.rows, "group of batches committed");
                Ok(())
            }
            Err(e) => {
                let error = error::map(
                    Stage::Load,
                    format!("committing a group of {} rows written into `{}`", group.rows, path.display()),
                    e,
                );
                if !connection.is_autocommit() {
                    let _ = connection.execute_batch("ROLLBACK");
                }
                tracing::warn!(group = group.number, rows = group.rows, error = %error.chain(), "a group of batches was lost");
                self.lost.push((group.number, error.chain()));
                // Only the loaders with a batch in the group fail; the connection is clean again.
                self.check_pending(pending)
            }
        }
    }

    /// Forgets the open group, noting it lost because of `error`.
    fn lose_group(&mut self, error: &Error) {
        if let Some(group) = self.group.take() {
            tracing::warn!(group = group.number, rows = group.rows, error = %error.chain(), "a group of batches was lost");
            self.lost.push((group.number, error.chain()));
        }
    }
}

/// Starts the thread committing idle or old groups; it ends with the writer.
fn start_flusher(writer: Weak<Writer>, every: Duration) {
    let spawned = std::thread::Builder::new().name("dmf-sqlite-group-commit".into()).spawn(move || {
        loop {
            std::thread::sleep(every);
            let Some(writer) = writer.upgrade() else { return };
            writer.flush_if_due();
        }
    });
    if let Err(error) = spawned {
        // Groups still commit by size, age (checked at each batch), last batch and drop.
        tracing::warn!(%error, "could not start the thread committing idle groups of batches");
    }
}

/// Test hook: make the next group commit fail.
#[cfg(test)]
pub(crate) mod fail_commit {
    use std::cell::Cell;

    thread_local! {
        static NEXT: Cell<bool> = const { Cell::new(false) };
    }

    pub(crate) fn arm() {
        NEXT.with(|n| n.set(true));
    }

    pub(crate) fn take() -> bool {
        NEXT.with(|n| n.replace(false))
    }
}

#[cfg(not(test))]
mod fail_commit {
    pub(crate) fn take() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A database with table `t (id INTEGER PRIMARY KEY)` and a writer on it.
    fn setup(limits: GroupLimits) -> (Dir, Arc<Writer>) {
        let dir = std::env::temp_dir().join(format!("dmf-writer-{}-{}", std::process::id(), fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        crate::connection::create(&path).unwrap().execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)").unwrap();
        let writer = Arc::new(Writer { path, limits, state: Mutex::new(State::default()) });
        (Dir(dir), writer)
    }

    /// Groups commit only by size or the last batch, unless a test says otherwise.
    const SLOW: GroupLimits =
        GroupLimits { rows: 1_000_000, age: Duration::from_secs(3600), idle: Duration::from_secs(3600) };

    const GROUPED: BatchMode = BatchMode { foreign_keys: false, last: false };
    const LAST: BatchMode = BatchMode { foreign_keys: false, last: true };
    const PER_ROW: BatchMode = BatchMode { foreign_keys: true, last: false };

    fn insert(writer: &Arc<Writer>, mode: BatchMode, pending: &mut Pending, id: i64) -> Result<()> {
        writer.write_batch(mode, pending, |c| {
            c.execute("INSERT INTO t (id) VALUES (?)", [id]).map_err(|e| error::map(Stage::Load, "insert", e))?;
            Ok(((), 1))
        })
    }

    /// The ids committed, as another connection sees them.
    fn committed(writer: &Writer) -> Vec<i64> {
        let connection = Connection::open(&writer.path).unwrap();
        let mut statement = connection.prepare("SELECT id FROM t ORDER BY id").unwrap();
        statement.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    }

    #[test]
    fn grouped_batches_commit_together_with_a_migrations_last_batch() {
        let (_dir, writer) = setup(SLOW);
        let (mut a, mut b) = (Pending::default(), Pending::default());
        insert(&writer, GROUPED, &mut a, 1).unwrap();
        insert(&writer, GROUPED, &mut b, 2).unwrap();
        assert_eq!(committed(&writer), Vec::<i64>::new(), "both batches wait in the open group");
        assert!(a.0.is_some() && a.0 == b.0, "one group holds both loaders' batches");
        insert(&writer, LAST, &mut a, 3).unwrap();
        assert_eq!(committed(&writer), [1, 2, 3]);
        assert_eq!(a.0, None, "the loader knows its batches are committed");
    }

    #[test]
    fn a_group_commits_once_it_holds_enough_rows() {
        let (_dir, writer) = setup(GroupLimits { rows: 2, ..SLOW });
        let mut pending = Pending::default();
        insert(&writer, GROUPED, &mut pending, 1).unwrap();
        assert_eq!(committed(&writer), Vec::<i64>::new());
        insert(&writer, GROUPED, &mut pending, 2).unwrap();
        assert_eq!(committed(&writer), [1, 2]);
    }

    #[test]
    fn an_idle_group_is_committed_by_the_flusher() {
        let (_dir, writer) = setup(GroupLimits { idle: Duration::from_millis(20), ..SLOW });
        insert(&writer, GROUPED, &mut Pending::default(), 1).unwrap();
        // Waits for the flusher thread (not a timing assertion: it fails only if it never commits).
        let deadline = Instant::now() + Duration::from_secs(30);
        while committed(&writer).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(committed(&writer), [1]);
    }

    #[test]
    fn a_failed_batch_is_rolled_back_alone() {
        let (_dir, writer) = setup(SLOW);
        let mut pending = Pending::default();
        insert(&writer, GROUPED, &mut pending, 1).unwrap();
        let failed = writer.write_batch(GROUPED, &mut pending, |c| -> Result<((), u64)> {
            c.execute("INSERT INTO t (id) VALUES (2)", []).unwrap();
            Err(Error::fatal(Stage::Load, "row 3 is bad"))
        });
        assert!(failed.unwrap_err().chain().contains("row 3 is bad"));
        insert(&writer, LAST, &mut pending, 4).unwrap();
        assert_eq!(committed(&writer), [1, 4], "row 2 went with its failed batch, row 1 stayed");
    }

    #[test]
    fn a_batch_checked_row_by_row_commits_the_open_group_first_and_itself() {
        let (_dir, writer) = setup(SLOW);
        insert(&writer, GROUPED, &mut Pending::default(), 1).unwrap();
        insert(&writer, PER_ROW, &mut Pending::default(), 2).unwrap();
        assert_eq!(committed(&writer), [1, 2]);
        let foreign_keys: bool = writer
            .run(&mut Pending::default(), |c| {
                c.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).map_err(|e| error::map(Stage::Load, "pragma", e))
            })
            .unwrap();
        assert!(foreign_keys, "the per-row batch ran with foreign keys on");
    }

    #[test]
    fn other_turns_see_a_settled_connection() {
        let (_dir, writer) = setup(SLOW);
        insert(&writer, GROUPED, &mut Pending::default(), 1).unwrap();
        let autocommit = writer.run(&mut Pending::default(), |c| Ok(c.is_autocommit())).unwrap();
        assert!(autocommit, "the group was committed before the turn");
        assert_eq!(committed(&writer), [1]);
    }

    #[test]
    fn dropping_the_writer_commits_the_open_group() {
        let (dir, writer) = setup(SLOW);
        insert(&writer, GROUPED, &mut Pending::default(), 1).unwrap();
        let path = writer.path.clone();
        drop(writer);
        let connection = Connection::open(&path).unwrap();
        let count: i64 = connection.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(count, 1);
        drop(dir);
    }

    #[test]
    fn a_lost_group_fails_every_loader_that_had_a_batch_in_it() {
        let (_dir, writer) = setup(SLOW);
        let (mut a, mut b, mut c) = (Pending::default(), Pending::default(), Pending::default());
        insert(&writer, GROUPED, &mut a, 1).unwrap();
        insert(&writer, GROUPED, &mut b, 2).unwrap();
        fail_commit::arm();
        let error = insert(&writer, LAST, &mut b, 3).unwrap_err();
        assert!(!error.is_transient(), "{}", error.chain());
        assert!(error.chain().contains("lost"), "{}", error.chain());
        assert_eq!(committed(&writer), Vec::<i64>::new(), "the whole group is gone");

        let error = insert(&writer, GROUPED, &mut a, 4).unwrap_err();
        assert!(error.chain().contains("lost"), "loader a had row 1 in the group: {}", error.chain());
        assert!(!error.is_transient());
        insert(&writer, LAST, &mut c, 5).unwrap();
        assert_eq!(committed(&writer), [5], "a loader with nothing in the lost group carries on");
    }
}
