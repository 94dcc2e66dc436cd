//! The COPY_ONLY backup (statements, parameters, compression by edition, verification, the
//! msdb check), the restore sequence with its refusals, and Database Mail, against scripted
//! servers.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use dmf_core::{Backup, BackupRecord, Notifier, RunId, RunStatus, RunSummary, Value};
use dmf_mssql::executor::{RecordedKind, Response, Script};
use dmf_mssql::{BACKUP_METHOD, MssqlOptions, SqlError};

fn facts(script: &Script, engine_edition: i32, edition: &str) {
    script.on(
        pattern::SERVER_FACTS,
        Response::rows(vec![vec![int(engine_edition), text("16.0.4135.4"), text(edition), flag(false), text("SQL1")]]),
    );
}

fn history(script: &Script, copy_only: bool) {
    script.on(
        "FROM msdb.dbo.backupset AS bs",
        Response::rows(vec![vec![big(8_388_608), big(1_048_576), flag(copy_only), flag(true)]]),
    );
}

#[tokio::test]
async fn a_verified_copy_only_backup_on_an_admin_session() {
    let (script, db) = scripted(MssqlOptions::default());
    facts(&script, 3, "Developer Edition (64-bit)");
    history(&script, true);
    let record = db.backup(Some("/var/opt/mssql/backup")).backup(RunId(42)).await.unwrap();
    assert_eq!(record.method, BACKUP_METHOD);
    assert!(record.location.starts_with("/var/opt/mssql/backup/Sales_dmf_run42_"), "{}", record.location);
    assert!(record.location.ends_with("Z.bak"));
    assert_eq!(record.size_bytes, Some(8_388_608));

    let log = script.log();
    assert_eq!(log[0].kind, RecordedKind::AdminSession, "BACKUP runs on an admin session (master, no command timeout)");
    let backup = &log[2];
    assert_eq!(backup.kind, RecordedKind::Execute);
    assert_eq!(
        backup.sql,
        "BACKUP DATABASE @P1 TO DISK = @P2 WITH COPY_ONLY, CHECKSUM, INIT, FORMAT, COMPRESSION, STATS = 10, NAME = N'dmf pre-run backup'"
    );
    assert_eq!(
        backup.params,
        vec![Value::Text("Sales".into()), Value::Text(record.location.clone())],
        "bound, never spliced"
    );
    assert_eq!(
        (log[3].sql.as_str(), log[3].params.clone()),
        ("RESTORE VERIFYONLY FROM DISK = @P1 WITH CHECKSUM", vec![Value::Text(record.location.clone())])
    );
    assert!(log[4].sql.contains("FROM msdb.dbo.backupset AS bs"));
    assert_eq!(log.len(), 5);
}

#[tokio::test]
async fn express_backs_up_without_compression_in_the_default_directory() {
    let (script, db) = scripted(MssqlOptions::default());
    facts(&script, 4, "Express Edition (64-bit)");
    script.on("InstanceDefaultBackupPath", Response::rows(vec![vec![text("C:\\Program Files\\Backup")]]));
    history(&script, true);
    let record = db.backup(None).backup(RunId(1)).await.unwrap();
    assert!(record.location.starts_with("C:\\Program Files\\Backup\\Sales_dmf_run1_"), "{}", record.location);
    let backup = script.log().into_iter().find(|r| r.sql.starts_with("BACKUP DATABASE")).unwrap();
    assert!(!backup.sql.contains("COMPRESSION"), "Express cannot compress: {}", backup.sql);
}

#[tokio::test]
async fn backups_that_msdb_does_not_record_as_copy_only_fail() {
    let (script, db) = scripted(MssqlOptions::default());
    facts(&script, 3, "Enterprise Edition");
    history(&script, false);
    let error = db.backup(Some("/b")).backup(RunId(1)).await.unwrap_err();
    assert!(error.to_string().contains("as copy-only false, with checksums true: expected both"), "{error}");
}

#[tokio::test]
async fn a_failed_backup_stops_with_sql_servers_reason() {
    let (script, db) = scripted(MssqlOptions::default());
    facts(&script, 3, "Enterprise Edition");
    script.on("BACKUP DATABASE", Response::Fail(SqlError::server(3201, "Cannot open backup device '/nope/x.bak'")));
    let error = db.backup(Some("/nope")).backup(RunId(1)).await.unwrap_err();
    assert!(error.to_string().contains("backing up [Sales] to /nope/Sales_dmf_run1_"), "{error}");
    assert!(error.to_string().contains("SQL Server error 3201"), "{error}");
    assert!(!statements(&script).iter().any(|s| s.starts_with("RESTORE")), "nothing verified after a failure");
}

#[tokio::test]
async fn azure_sql_database_has_no_backup_to_disk() {
    let (script, db) = scripted(MssqlOptions::default());
    facts(&script, 5, "SQL Azure");
    let error = db.backup(Some("/b")).backup(RunId(1)).await.unwrap_err();
    assert!(error.to_string().contains("Azure SQL Database, which has no BACKUP TO DISK"), "{error}");
}

fn record(location: &str) -> BackupRecord {
    BackupRecord {
        method: BACKUP_METHOD.into(),
        location: location.into(),
        taken_at: SystemTime::now(),
        size_bytes: None,
    }
}

#[tokio::test]
async fn restore_goes_single_user_restores_with_replace_and_always_comes_back_multi_user() {
    let (script, db) = scripted(MssqlOptions::default());
    database_state(&script, "ONLINE", "MULTI_USER", false, false);
    db.backup(None).restore(&record("/b/Sales.bak")).await.unwrap();
    let sent = statements(&script);
    assert_eq!(sent[1], "ALTER DATABASE [Sales] SET SINGLE_USER WITH ROLLBACK IMMEDIATE");
    assert_eq!(sent[2], "RESTORE DATABASE @P1 FROM DISK = @P2 WITH REPLACE, RECOVERY, CHECKSUM, STATS = 10");
    assert_eq!(sent[3], "ALTER DATABASE [Sales] SET MULTI_USER");
    assert_eq!(script.log()[3].params, vec![Value::Text("Sales".into()), Value::Text("/b/Sales.bak".into())]);

    let (script, db) = scripted(MssqlOptions::default());
    database_state(&script, "ONLINE", "MULTI_USER", false, false);
    script.on("RESTORE DATABASE", Response::Fail(SqlError::server(3101, "Exclusive access could not be obtained")));
    let error = db.backup(None).restore(&record("/b/Sales.bak")).await.unwrap_err();
    assert!(error.to_string().contains("SQL Server error 3101"), "{error}");
    assert_eq!(
        statements(&script).last().unwrap(),
        "ALTER DATABASE [Sales] SET MULTI_USER",
        "multi-user even after a failure"
    );
}

#[tokio::test]
async fn restore_refuses_databases_in_an_availability_group_and_foreign_backups() {
    let (script, db) = scripted(MssqlOptions::default());
    database_state(&script, "ONLINE", "MULTI_USER", false, true);
    let error = db.backup(None).restore(&record("/b/Sales.bak")).await.unwrap_err();
    assert!(
        error.to_string().contains("is in an availability group: DMF does not restore it automatically"),
        "{error}"
    );
    assert!(!statements(&script).iter().any(|s| s.starts_with("ALTER DATABASE")));

    let foreign = BackupRecord { method: "pg_dump".into(), ..record("/x") };
    assert!(db.backup(None).restore(&foreign).await.unwrap_err().to_string().contains("taken by `pg_dump`"));
}

fn summary(status: RunStatus) -> RunSummary {
    RunSummary {
        run: RunId(9),
        status,
        migrations: Vec::new(),
        preflight: Default::default(),
        backup: None,
        duration: Duration::from_secs(3),
        error: None,
    }
}

#[tokio::test]
async fn run_summaries_are_mailed_through_sp_send_dbmail_with_parameters() {
    let (script, db) = scripted(MssqlOptions::default());
    script.on("msdb.dbo.sp_send_dbmail", Response::rows(vec![vec![int(77)]]));
    let notifier = db.mail_notifier("dmf profile", "ops@example.com;dba@example.com");
    notifier.notify(&summary(RunStatus::Failed)).await.unwrap();
    let mail = script.log().into_iter().find(|r| r.sql.contains("sp_send_dbmail")).unwrap();
    assert_eq!(mail.kind, RecordedKind::Query);
    assert_eq!(mail.params[0], Value::Text("dmf profile".into()));
    assert_eq!(mail.params[1], Value::Text("ops@example.com;dba@example.com".into()));
    assert_eq!(mail.params[2], Value::Text("dmf run 9 FAILED".into()));
    assert!(
        matches!(&mail.params[3], Value::Text(body) if body.starts_with("run 9 failed in")),
        "{:?}",
        mail.params[3]
    );
    assert_eq!(notifier.subject(&summary(RunStatus::Completed)), "dmf run 9 completed");

    script.on("msdb.dbo.sp_send_dbmail", Response::Fail(SqlError::server(14607, "profile name is not valid")));
    let error = notifier.notify(&summary(RunStatus::Completed)).await.unwrap_err();
    assert!(error.to_string().contains("by Database Mail on sa@test:1433/Sales: SQL Server error 14607"), "{error}");
}
