//! Pre-flight decides from what the server says: version, database state, Always On role and
//! health, control tables. Driven through the scripted executor; each test asserts the
//! statements sent and the decisions.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use dmf_core::CheckStatus;
use dmf_core::orchestrator::CheckOutcome;
use dmf_core::sync::{Database, DatabaseRole};
use dmf_mssql::MssqlOptions;
use dmf_mssql::executor::{Response, Script};

fn status_of<'a>(outcomes: &'a [CheckOutcome], check: &str) -> &'a CheckOutcome {
    outcomes.iter().find(|o| o.check == check).unwrap_or_else(|| panic!("no check `{check}` in {outcomes:#?}"))
}

/// An AG with this replica (SQL1) and one synchronous secondary (SQL2).
fn availability_group(script: &Script, local_primary: bool, connections: &str, secondary_health: &str) {
    script.on(
        pattern::REPLICA_STATES,
        Response::rows(vec![
            replica(
                "SQL1",
                true,
                local_primary,
                "SYNCHRONOUS_COMMIT",
                connections,
                "SYNCHRONIZED",
                "HEALTHY",
                false,
                10,
            ),
            replica(
                "SQL2",
                false,
                !local_primary,
                "SYNCHRONOUS_COMMIT",
                connections,
                "SYNCHRONIZED",
                secondary_health,
                false,
                20,
            ),
        ]),
    );
}

#[tokio::test]
async fn a_standalone_target_passes_and_its_missing_control_tables_will_be_created() {
    let (script, db) = scripted(MssqlOptions::default());
    server_facts(&script, "16.0.4135.4", false);
    database_state(&script, "ONLINE", "MULTI_USER", false, false);
    control_tables(&script, false, true);
    let outcomes = db.preflight(DatabaseRole::Target).await;
    assert!(outcomes.iter().all(|o| o.status == CheckStatus::Passed), "{outcomes:#?}");
    assert!(
        status_of(&outcomes, "target connectivity")
            .detail
            .starts_with("sa@test:1433/Sales (SQL1): SQL Server 16.0.4135.4")
    );
    assert_eq!(status_of(&outcomes, "target replica role").detail, "Always On is not enabled on this server");
    assert!(status_of(&outcomes, "target control tables").detail.ends_with("missing: they will be created"));
    let sent = statements(&script);
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert!(sent[0].contains(pattern::SERVER_FACTS));
    assert!(sent[1].contains(pattern::DATABASE_STATE));
    assert!(sent[2].contains(pattern::INSPECT));
    assert_eq!(script.log()[2].params, vec![dmf_core::Value::Text("Sales".into())], "the database is a parameter");
}

#[tokio::test]
async fn an_ag_primary_flagged_as_production_is_refused_as_a_target() {
    let (script, db) = scripted(MssqlOptions { production: true, ..MssqlOptions::default() });
    server_facts(&script, "16.0.4135.4", true);
    database_state(&script, "ONLINE", "MULTI_USER", false, true);
    availability_group(&script, true, "ALL", "HEALTHY");
    control_tables(&script, true, true);
    let outcomes = db.preflight(DatabaseRole::Target).await;
    let role = status_of(&outcomes, "target replica role");
    assert_eq!(role.status, CheckStatus::Failed);
    assert_eq!(
        role.detail,
        "SQL1 is the primary replica of ag1 and the target is flagged as production: DMF does not write into it"
    );
    assert!(statements(&script).iter().any(|s| s.contains(pattern::REPLICA_STATES)));
}

#[tokio::test]
async fn the_same_primary_not_flagged_as_production_is_written_to() {
    let (script, db) = scripted(MssqlOptions::default());
    server_facts(&script, "16.0.4135.4", true);
    database_state(&script, "ONLINE", "MULTI_USER", false, true);
    availability_group(&script, true, "ALL", "HEALTHY");
    control_tables(&script, true, true);
    let outcomes = db.preflight(DatabaseRole::Target).await;
    assert!(outcomes.iter().all(|o| o.status == CheckStatus::Passed), "{outcomes:#?}");
    assert_eq!(status_of(&outcomes, "target secondary health").detail, "1 secondaries of ag1 healthy");
    assert!(status_of(&outcomes, "target control tables").detail.starts_with("dmf.runs, dmf.migration_runs"));
}

#[tokio::test]
async fn a_secondary_is_refused_as_a_target_readable_or_not() {
    for connections in ["NO", "ALL"] {
        let (script, db) = scripted(MssqlOptions::default());
        server_facts(&script, "15.0.2000.5", true);
        database_state(&script, "ONLINE", "MULTI_USER", false, true);
        availability_group(&script, false, connections, "HEALTHY");
        control_tables(&script, true, true);
        let outcomes = db.preflight(DatabaseRole::Target).await;
        let role = status_of(&outcomes, "target replica role");
        assert_eq!(role.status, CheckStatus::Failed, "{connections}");
        assert!(role.detail.contains("secondary replica of ag1: writes are refused"), "{}", role.detail);
        let readable = if connections == "NO" { "non-readable" } else { "readable" };
        assert!(role.detail.starts_with(&format!("SQL1 is a {readable} secondary")), "{}", role.detail);
    }
}

#[tokio::test]
async fn a_readable_secondary_is_fine_as_a_source_a_non_readable_one_is_not() {
    let (script, db) = scripted(MssqlOptions::default());
    server_facts(&script, "16.0.4135.4", true);
    database_state(&script, "ONLINE", "MULTI_USER", true, true);
    availability_group(&script, false, "READ_ONLY", "HEALTHY");
    let outcomes = db.preflight(DatabaseRole::Source).await;
    assert!(outcomes.iter().all(|o| o.status == CheckStatus::Passed), "{outcomes:#?}");
    assert_eq!(
        status_of(&outcomes, "source replica role").detail,
        "SQL1 is a readable secondary of ag1 (READ_ONLY): fine as a source"
    );
    assert!(
        !statements(&script).iter().any(|s| s.contains(pattern::INSPECT)),
        "a source's control tables are not checked"
    );

    let (script, db) = scripted(MssqlOptions::default());
    server_facts(&script, "16.0.4135.4", true);
    database_state(&script, "ONLINE", "MULTI_USER", true, true);
    availability_group(&script, false, "NO", "HEALTHY");
    let outcomes = db.preflight(DatabaseRole::Source).await;
    assert_eq!(status_of(&outcomes, "source replica role").status, CheckStatus::Failed);
}

#[tokio::test]
async fn an_unhealthy_synchronous_secondary_refuses_writes_unless_allowed() {
    for allow in [false, true] {
        let (script, db) = scripted(MssqlOptions { allow_unhealthy_secondaries: allow, ..MssqlOptions::default() });
        server_facts(&script, "16.0.4135.4", true);
        database_state(&script, "ONLINE", "MULTI_USER", false, true);
        availability_group(&script, true, "ALL", "NOT_HEALTHY");
        control_tables(&script, true, true);
        let outcomes = db.preflight(DatabaseRole::Target).await;
        let health = status_of(&outcomes, "target secondary health");
        assert_eq!(health.status, if allow { CheckStatus::Warning } else { CheckStatus::Failed });
        assert!(health.detail.contains("SQL2 (SYNCHRONIZED, NOT_HEALTHY)"), "{}", health.detail);
    }
}

#[tokio::test]
async fn long_secondary_queues_are_a_warning() {
    let (script, db) = scripted(MssqlOptions { queue_warning_kb: 5, ..MssqlOptions::default() });
    server_facts(&script, "16.0.4135.4", true);
    database_state(&script, "ONLINE", "MULTI_USER", false, true);
    availability_group(&script, true, "ALL", "HEALTHY");
    control_tables(&script, true, true);
    let outcomes = db.preflight(DatabaseRole::Target).await;
    let queues = status_of(&outcomes, "target secondary queues");
    assert_eq!(queues.status, CheckStatus::Warning);
    assert!(queues.detail.contains("SQL2 (log send queue 20 KB, redo queue 0 KB)"), "{}", queues.detail);
}

#[tokio::test]
async fn without_view_server_state_the_role_is_unknown_and_writes_are_refused() {
    let (script, db) = scripted(MssqlOptions::default());
    server_facts(&script, "16.0.4135.4", true);
    database_state(&script, "ONLINE", "MULTI_USER", false, true);
    script.on(
        pattern::REPLICA_STATES,
        Response::Fail(dmf_mssql::SqlError::server(297, "The user does not have permission")),
    );
    control_tables(&script, true, true);
    let outcomes = db.preflight(DatabaseRole::Target).await;
    let role = status_of(&outcomes, "target replica role");
    assert_eq!(role.status, CheckStatus::Failed);
    assert!(role.detail.contains("need VIEW SERVER STATE"), "{}", role.detail);
    assert!(role.detail.ends_with("refusing to write while the replica role is unknown"), "{}", role.detail);
    // The other checks still run.
    assert_eq!(status_of(&outcomes, "target control tables").status, CheckStatus::Passed);
}

#[tokio::test]
async fn old_servers_read_only_databases_and_missing_permissions_are_refused() {
    let (script, db) = scripted(MssqlOptions::default());
    server_facts(&script, "12.0.6024.0", false);
    database_state(&script, "ONLINE", "MULTI_USER", true, false);
    control_tables(&script, false, false);
    let outcomes = db.preflight(DatabaseRole::Target).await;
    let version = status_of(&outcomes, "target connectivity");
    assert_eq!(version.status, CheckStatus::Failed);
    assert!(version.detail.ends_with("DMF needs SQL Server 2016 (13.x) or later"), "{}", version.detail);
    let state = status_of(&outcomes, "target database state");
    assert_eq!(
        (state.status, state.detail.as_str()),
        (CheckStatus::Failed, "database [Sales] is read-only: every write would be refused")
    );
    let control = status_of(&outcomes, "target control tables");
    assert_eq!(control.status, CheckStatus::Failed);
    assert!(
        control.detail.ends_with("and the login lacks CREATE SCHEMA and CREATE TABLE to create them"),
        "{}",
        control.detail
    );
}

#[tokio::test]
async fn an_unreachable_server_reports_connectivity_only() {
    let (script, db) = scripted(MssqlOptions::default());
    script.fail_next_session(dmf_mssql::SqlError::Io {
        kind: std::io::ErrorKind::ConnectionRefused,
        message: "refused".into(),
    });
    let outcomes = db.preflight(DatabaseRole::Target).await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].status, CheckStatus::Failed);
    assert!(
        outcomes[0].detail.starts_with("cannot connect to SQL Server at sa@test:1433/Sales"),
        "{}",
        outcomes[0].detail
    );
    assert!(statements(&script).is_empty());
}

#[tokio::test]
async fn a_missing_or_offline_database_is_refused() {
    let (script, db) = scripted(MssqlOptions::default());
    server_facts(&script, "16.0.4135.4", false);
    script.on(pattern::DATABASE_STATE, Response::rows(vec![]));
    let outcomes = db.preflight(DatabaseRole::Source).await;
    assert_eq!(status_of(&outcomes, "source database state").detail, "there is no database [Sales] on this server");

    let (script, db) = scripted(MssqlOptions::default());
    server_facts(&script, "16.0.4135.4", false);
    database_state(&script, "RESTORING", "MULTI_USER", false, false);
    let outcomes = db.preflight(DatabaseRole::Source).await;
    assert_eq!(status_of(&outcomes, "source database state").detail, "database [Sales] is RESTORING, not ONLINE");
}

#[tokio::test]
async fn a_standalone_target_flagged_as_production_is_refused_too_but_reading_from_it_is_fine() {
    let (script, db) = scripted(MssqlOptions { production: true, ..MssqlOptions::default() });
    server_facts(&script, "16.0.4135.4", false);
    database_state(&script, "ONLINE", "MULTI_USER", false, false);
    control_tables(&script, true, true);
    let outcomes = db.preflight(DatabaseRole::Target).await;
    let role = status_of(&outcomes, "target replica role");
    assert_eq!(role.status, CheckStatus::Failed);
    assert!(
        role.detail.ends_with("the target is flagged as production: DMF does not write into it"),
        "{}",
        role.detail
    );

    server_facts(&script, "16.0.4135.4", false);
    database_state(&script, "ONLINE", "MULTI_USER", false, false);
    let outcomes = db.preflight(DatabaseRole::Source).await;
    assert!(outcomes.iter().all(|o| o.status == CheckStatus::Passed), "{outcomes:#?}");
}
