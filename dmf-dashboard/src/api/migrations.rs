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

/// Every registered migration in plan order (dependencies first), with its latest record.
pub(crate) async fn list(State(dashboard): State<Dashboard>) -> Result<Json<MigrationList>, ApiError> {
    let inner = &dashboard.inner;
    let store = inner.orchestrator.store();
    let mut migrations = Vec::new();
    for name in inner.orchestrator.plan() {
        let Some(migration) = inner.orchestrator.migration(name) else { continue };
        let latest = store.latest_record(name).await.map_err(DashboardError::Store)?;
        let live = inner.live.latest_of(name);
        // Live progress belongs to the latest record only when it is of the same run.
        let latest = latest.map(|record| {
            let same_run = live.as_ref().filter(|(run, _)| *run == record.run).map(|(_, m)| m);
            RecordView::new(&record, same_run)
        });
        migrations.push(MigrationView {
            name: name.clone(),
            description: migration.description().to_owned(),
            dependencies: migration.dependencies().to_vec(),
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
