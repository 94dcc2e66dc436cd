//! The backup step, taken after pre-flight and before the first write.

use std::time::SystemTime;

use async_trait::async_trait;

use crate::error::Result;
use crate::names::RunId;

/// Where a backup was written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupRecord {
    /// What took it (`sqlite-online-backup`, `pg_dump`, `mssql-copy-only`…).
    pub method: String,
    /// A path or URL to restore from.
    pub location: String,
    /// When it was taken.
    pub taken_at: SystemTime,
    /// Its size, when known.
    pub size_bytes: Option<u64>,
}

/// Takes a backup of the target before a run writes to it, and restores it for rollback.
///
/// Stored as `Box<dyn Backup>`, so it uses `async-trait`.
#[async_trait]
pub trait Backup: Send + Sync {
    /// Takes the backup for `run`.
    async fn backup(&self, run: RunId) -> Result<BackupRecord>;

    /// Puts the target back as it was when `record` was taken.
    async fn restore(&self, record: &BackupRecord) -> Result<()>;
}

#[async_trait]
impl<B: Backup + ?Sized> Backup for std::sync::Arc<B> {
    async fn backup(&self, run: RunId) -> Result<BackupRecord> {
        (**self).backup(run).await
    }

    async fn restore(&self, record: &BackupRecord) -> Result<()> {
        (**self).restore(record).await
    }
}
