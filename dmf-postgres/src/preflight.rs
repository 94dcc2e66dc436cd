//! The database's own pre-flight checks: connectivity, standby role, read-only setting, and
//! the control tables.

use std::time::Instant;

use dmf_core::orchestrator::CheckOutcome;
use dmf_core::sync::DatabaseRole;
use dmf_core::{Error, Stage};

use crate::control::inspect;
use crate::database::Shared;
use crate::error::to_dmf_error;

/// What the checks ask the server.
const STATE: &str = "SELECT current_setting('server_version'), pg_is_in_recovery(), \
     current_setting('default_transaction_read_only')::bool, current_user::text";

/// The message of an error, without the stage prefix (the check's name says it).
fn message(error: &Error) -> String {
    match error {
        Error::Stage { message, .. } => message.clone(),
        other => other.chain().replace('\n', "; "),
    }
}

/// Runs the checks for `role`. Only the connectivity check is reported when the server
/// cannot be reached.
pub(crate) async fn check(shared: &Shared, role: DatabaseRole) -> Vec<CheckOutcome> {
    let side = match role {
        DatabaseRole::Source => "source",
        DatabaseRole::Target => "target",
    };
    let server = shared.connector.name();
    let connectivity = format!("{side} connectivity");
    let started = Instant::now();
    let client = match shared.connector.connect(Stage::Preflight).await {
        Ok(client) => client,
        Err(error) => return vec![CheckOutcome::failed(connectivity, message(&error))],
    };
    let state = client.query_one(STATE, &[]).await;
    let row = match state {
        Ok(row) => row,
        Err(error) => {
            let error = to_dmf_error(error, Stage::Preflight, format!("asking {server} for its state"));
            return vec![CheckOutcome::failed(connectivity, message(&error))];
        }
    };
    let (version, in_recovery, read_only, user): (String, bool, bool, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let mut outcomes = vec![CheckOutcome::passed(
        connectivity,
        format!("{server}: PostgreSQL {version}, answered in {} ms", started.elapsed().as_millis()),
    )];

    let replica = format!("{side} replica role");
    outcomes.push(match (role, in_recovery) {
        (DatabaseRole::Target, true) => {
            CheckOutcome::failed(replica, format!("the target is a standby in recovery: refusing to write ({server})"))
        }
        (DatabaseRole::Source, true) => CheckOutcome::passed(
            replica,
            format!("{server} is a standby in recovery: reading from it is fine (DMF only reads the source)"),
        ),
        (_, false) => CheckOutcome::passed(replica, format!("{server} is a primary")),
    });
    if role == DatabaseRole::Source {
        return outcomes;
    }

    outcomes.push(if read_only {
        CheckOutcome::failed(
            "target read-only setting",
            format!(
                "default_transaction_read_only is on for {server}: every write would be refused; turn it off for \
                 the DMF user (ALTER ROLE \"{user}\" SET default_transaction_read_only = off)"
            ),
        )
    } else {
        CheckOutcome::passed("target read-only setting", "default_transaction_read_only is off: writes are accepted")
    });

    let control = "target control tables";
    outcomes.push(match inspect(&client, server).await {
        Err(error) => CheckOutcome::failed(control, message(&error)),
        Ok(state) if state.missing.is_empty() => {
            CheckOutcome::passed(control, format!("{} exist", state.existing.join(", ")))
        }
        Ok(state) if state.can_create => CheckOutcome::passed(
            control,
            format!("{} missing: they will be created (user {user} may create them)", state.missing.join(", ")),
        ),
        Ok(state) => {
            let privilege = if state.schema_exists {
                "CREATE on schema dmf".to_owned()
            } else {
                "CREATE on the database".to_owned()
            };
            CheckOutcome::failed(
                control,
                format!(
                    "{} missing, and user {user} lacks {privilege} to create them: create them first or grant it",
                    state.missing.join(", ")
                ),
            )
        }
    });
    outcomes
}
