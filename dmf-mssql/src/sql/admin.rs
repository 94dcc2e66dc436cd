//! Server facts, Always On state, COPY_ONLY backup and its verification, restoring for
//! rollback, and Database Mail.

use super::quote_ident;

/// The cheapest round trip: does the server answer on this connection?
pub(crate) const PING: &str = "SELECT 1";

/// Edition, version and whether Always On (HADR) is enabled.
///
/// Columns: 0 engine edition (2 Standard, 3 Enterprise/Developer, 4 Express, 5 Azure SQL
/// Database, 8 Managed Instance), 1 product version (`16.0.4135.4`), 2 edition name,
/// 3 HADR enabled, 4 server name.
pub(crate) const SERVER_FACTS: &str = "\
SELECT CAST(SERVERPROPERTY('EngineEdition') AS int) AS engine_edition,
       CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS product_version,
       CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS edition,
       CAST(ISNULL(SERVERPROPERTY('IsHadrEnabled'), 0) AS int) AS is_hadr_enabled,
       CAST(@@SERVERNAME AS nvarchar(256)) AS server_name";

/// The database's state. Parameter: database name.
///
/// Columns: 0 state (`ONLINE`…), 1 user access (`MULTI_USER`…), 2 read-only, 3 in an
/// availability group, 4 updateability (`READ_WRITE` / `READ_ONLY`).
pub(crate) const DATABASE_STATE: &str = "\
SELECT d.state_desc, d.user_access_desc, CAST(d.is_read_only AS int) AS is_read_only,
       CAST(CASE WHEN d.group_database_id IS NULL THEN 0 ELSE 1 END AS int) AS in_availability_group,
       CAST(DATABASEPROPERTYEX(d.name, 'Updateability') AS nvarchar(20)) AS updateability
FROM sys.databases AS d
WHERE d.name = @P1";

/// Every replica's state for the database (run only when HADR is enabled and the database
/// is in a group). Parameter: database name.
///
/// Columns: 0 group, 1 replica server, 2 is this replica, 3 is primary, 4 role, 5 replica
/// synchronization health, 6 availability mode, 7 secondary role allows connections,
/// 8 database synchronization state, 9 database synchronization health, 10 suspended,
/// 11 log send queue (KB), 12 redo queue (KB).
pub(crate) const REPLICA_STATES: &str = "\
SELECT ag.name AS ag_name, ar.replica_server_name, CAST(drs.is_local AS int) AS is_local,
       CAST(drs.is_primary_replica AS int) AS is_primary_replica, ars.role_desc,
       ars.synchronization_health_desc AS replica_health, ar.availability_mode_desc,
       ar.secondary_role_allow_connections_desc, drs.synchronization_state_desc,
       drs.synchronization_health_desc AS database_health, CAST(drs.is_suspended AS int) AS is_suspended,
       CAST(drs.log_send_queue_size AS bigint) AS log_send_queue_kb, CAST(drs.redo_queue_size AS bigint) AS redo_queue_kb
FROM sys.dm_hadr_database_replica_states AS drs
JOIN sys.availability_replicas AS ar ON ar.replica_id = drs.replica_id
JOIN sys.availability_groups AS ag ON ag.group_id = drs.group_id
LEFT JOIN sys.dm_hadr_availability_replica_states AS ars ON ars.replica_id = drs.replica_id
WHERE drs.database_id = DB_ID(@P1)
ORDER BY drs.is_local DESC, ar.replica_server_name";

/// The server's default backup directory (SQL Server 2019 and later; NULL before).
pub(crate) const DEFAULT_BACKUP_PATH: &str =
    "SELECT CAST(SERVERPROPERTY('InstanceDefaultBackupPath') AS nvarchar(4000)) AS backup_path";

/// A copy-only full backup (it does not disturb the server's backup chain), with page
/// checksums, overwriting the file. BACKUP accepts variables for the database and the file,
/// so both are parameters: `@P1` database, `@P2` path on the server. `COMPRESSION` only
/// where the edition has it (not Express or Web).
pub(crate) fn backup(compression: bool) -> String {
    let compression = if compression { ", COMPRESSION" } else { "" };
    format!(
        "BACKUP DATABASE @P1 TO DISK = @P2 WITH COPY_ONLY, CHECKSUM, INIT, FORMAT{compression}, STATS = 10, \
         NAME = N'dmf pre-run backup'"
    )
}

/// Checks that the backup file is complete and readable and its page checksums hold (not
/// a DBCC CHECKDB of its content). Parameter: `@P1` path.
pub(crate) const VERIFY: &str = "RESTORE VERIFYONLY FROM DISK = @P1 WITH CHECKSUM";

/// The backup just written, from msdb's history: size and whether it is copy-only with
/// checksums. Parameters: `@P1` database, `@P2` path.
///
/// Columns: 0 size (bytes), 1 compressed size, 2 copy-only, 3 has checksums.
pub(crate) const BACKUP_HISTORY: &str = "\
SELECT TOP (1) CAST(bs.backup_size AS bigint) AS backup_size, CAST(bs.compressed_backup_size AS bigint) AS compressed_size,
       CAST(bs.is_copy_only AS int) AS is_copy_only, CAST(bs.has_backup_checksums AS int) AS has_checksums
FROM msdb.dbo.backupset AS bs
JOIN msdb.dbo.backupmediafamily AS bmf ON bmf.media_set_id = bs.media_set_id
WHERE bs.database_name = @P1 AND bmf.physical_device_name = @P2 AND bs.type = 'D'
ORDER BY bs.backup_finish_date DESC";

/// Puts the database in single-user mode, rolling back every other session's open
/// transaction at once (run on `master`). ALTER DATABASE takes no variables: the name is
/// bracket-quoted.
pub(crate) fn single_user(database: &str) -> String {
    format!("ALTER DATABASE {} SET SINGLE_USER WITH ROLLBACK IMMEDIATE", quote_ident(database))
}

/// Replaces the database with the backup: everyone's writes since the backup are lost, not
/// only the run's. Parameters: `@P1` database, `@P2` path.
pub(crate) const RESTORE: &str = "RESTORE DATABASE @P1 FROM DISK = @P2 WITH REPLACE, RECOVERY, CHECKSUM, STATS = 10";

/// Back to multi-user mode (also after a failed restore).
pub(crate) fn multi_user(database: &str) -> String {
    format!("ALTER DATABASE {} SET MULTI_USER", quote_ident(database))
}

/// Queues a mail through Database Mail and returns its `mailitem_id`. Parameters: `@P1`
/// profile, `@P2` recipients (`;`-separated), `@P3` subject, `@P4` body (plain text).
pub(crate) const SEND_MAIL: &str = "\
DECLARE @mailitem_id int; \
EXEC msdb.dbo.sp_send_dbmail @profile_name = @P1, @recipients = @P2, @subject = @P3, @body = @P4, \
@body_format = N'TEXT', @mailitem_id = @mailitem_id OUTPUT; \
SELECT @mailitem_id AS mailitem_id;";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_are_copy_only_with_checksums_and_parameters() {
        assert_eq!(
            backup(true),
            "BACKUP DATABASE @P1 TO DISK = @P2 WITH COPY_ONLY, CHECKSUM, INIT, FORMAT, COMPRESSION, STATS = 10, NAME = N'dmf pre-run backup'"
        );
        assert_eq!(
            backup(false),
            "BACKUP DATABASE @P1 TO DISK = @P2 WITH COPY_ONLY, CHECKSUM, INIT, FORMAT, STATS = 10, NAME = N'dmf pre-run backup'"
        );
        assert_eq!(VERIFY, "RESTORE VERIFYONLY FROM DISK = @P1 WITH CHECKSUM");
    }

    #[test]
    fn restore_statements_quote_the_database_name() {
        assert_eq!(single_user("Sales"), "ALTER DATABASE [Sales] SET SINGLE_USER WITH ROLLBACK IMMEDIATE");
        assert_eq!(
            single_user("x]; DROP DATABASE y; --"),
            "ALTER DATABASE [x]]; DROP DATABASE y; --] SET SINGLE_USER WITH ROLLBACK IMMEDIATE"
        );
        assert_eq!(multi_user("Sales DB"), "ALTER DATABASE [Sales DB] SET MULTI_USER");
        assert_eq!(RESTORE, "RESTORE DATABASE @P1 FROM DISK = @P2 WITH REPLACE, RECOVERY, CHECKSUM, STATS = 10");
    }

    #[test]
    fn hadr_queries_read_role_and_health() {
        assert!(SERVER_FACTS.contains("SERVERPROPERTY('IsHadrEnabled')"));
        assert!(DATABASE_STATE.contains("DATABASEPROPERTYEX(d.name, 'Updateability')"));
        for fact in [
            "ars.role_desc",
            "drs.is_primary_replica",
            "secondary_role_allow_connections_desc",
            "drs.synchronization_health_desc",
            "sys.availability_groups",
        ] {
            assert!(REPLICA_STATES.contains(fact), "{fact}");
        }
    }

    #[test]
    fn mail_goes_through_sp_send_dbmail_with_parameters() {
        assert_eq!(
            SEND_MAIL,
            "DECLARE @mailitem_id int; EXEC msdb.dbo.sp_send_dbmail @profile_name = @P1, @recipients = @P2, @subject = @P3, \
             @body = @P4, @body_format = N'TEXT', @mailitem_id = @mailitem_id OUTPUT; SELECT @mailitem_id AS mailitem_id;"
        );
    }
}
