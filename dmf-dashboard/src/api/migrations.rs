//! `GET /api/migrations` and `POST /api/migrations/{name}/rollback`.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::views::{MigrationView, ProgressView, RecordView};
use super::{JsonBody, MigrationParam};
use crate::dashboard::Dashboard;
use crate::error::{ApiError, DashboardError};

#[derive(Serialize)]
pub(crate) struct MigrationList {
    migrations: Vec<MigrationView>,
}

/// Every registered migration in plan order (dependencies first), with its latest record. A
/// dashboard with none registered (`dmf serve`, over runs other processes made) lists the
/// migrations of the latest recorded run, in its plan's order.
pub(crate) async fn list(State(dashboard): State<Dashboard>) -> Result<Json<MigrationList>, ApiError> {
    let inner = &dashboard.inner;
    let store = inner.orchestrator.store();
    let names: Vec<dmf_core::MigrationName> = match inner.orchestrator.plan() {
        [] => store
            .runs(1)
            .await
            .map_err(DashboardError::Store)?
            .into_iter()
            .next()
            .map(|run| run.plan)
            .unwrap_or_default(),
        plan => plan.to_vec(),
    };
    let mut migrations = Vec::new();
    for name in &names {
        let registered = inner.orchestrator.migration(name);
        let (description, dependencies) = match registered {
            Some(migration) => (migration.description().to_owned(), migration.dependencies().to_vec()),
            None => ("recorded in the target's run history".to_owned(), Vec::new()),
        };
        let latest = store.latest_record(name).await.map_err(DashboardError::Store)?;
        let live = inner.live.latest_of(name);
        // Live progress belongs to the latest record only when it is of the same run.
        let latest = latest.map(|record| {
            let same_run = live.as_ref().filter(|(run, _)| *run == record.run).map(|(_, m)| m);
            RecordView::new(&record, same_run)
        });
        migrations.push(MigrationView {
            name: name.clone(),
            description,
            dependencies,
            latest,
            progress: live.map(|(run, m)| ProgressView::new(run, &m)),
        });
    }
    Ok(Json(MigrationList { migrations }))
}

/// The body of a rollback: nothing yet, but it must be empty or a JSON object.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollbackBody {}

#[derive(Serialize)]
struct Undone {
    migration: dmf_core::MigrationName,
    run: dmf_core::RunId,
    deleted: u64,
    restored: u64,
}

#[derive(Serialize)]
pub(crate) struct RollbackAnswer {
    undone: Vec<Undone>,
}

/// Rolls back the latest run of one migration; answers when it is done.
pub(crate) async fn rollback(
    State(dashboard): State<Dashboard>,
    MigrationParam(name): MigrationParam,
    JsonBody(RollbackBody {}): JsonBody<RollbackBody>,
) -> Result<Json<RollbackAnswer>, ApiError> {
    let summary = dashboard.inner.control.rollback(name).await?;
    let undone = summary
        .undone
        .into_iter()
        .map(|(migration, run, report)| Undone { migration, run, deleted: report.deleted, restored: report.restored })
        .collect();
    Ok(Json(RollbackAnswer { undone }))
}
