//! Run history and control: list, detail (with the rejects summary), start, cancel, rejects.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dmf_core::{MigrationName, RunId, RunRecord, RunStatus, Stage};
use serde::{Deserialize, Serialize};

use super::views::{RecordView, RejectView, RunView};
use super::{JsonBody, RunIdParam};
use crate::control::{CancelOutcome, RunOptions};
use crate::dashboard::Dashboard;
use crate::error::{ApiError, DashboardError};

/// Runs listed by default, and at most.
const RUNS_DEFAULT: usize = 20;
const RUNS_MAX: usize = 200;
/// Rejects per page by default, and at most (larger limits are capped).
const REJECTS_DEFAULT: usize = 50;
const REJECTS_MAX: usize = 500;
/// Rejects read to count a run's quarantine by migration and stage; past this the summary
/// says it is partial.
const REJECTS_COUNTED: usize = 20_000;

fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|rejection| ApiError::bad_request(rejection.body_text()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
}

#[derive(Serialize)]
pub(crate) struct RunList {
    runs: Vec<RunView>,
}

/// The most recent runs first, from the run store (so runs of other processes show too).
pub(crate) async fn list(
    State(dashboard): State<Dashboard>,
    params: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let limit = query(params)?.limit.unwrap_or(RUNS_DEFAULT);
    if limit == 0 {
        return Err(ApiError::bad_request("`limit` must be at least 1"));
    }
    let inner = &dashboard.inner;
    let store = inner.orchestrator.store();
    let records = store.runs(limit.min(RUNS_MAX)).await.map_err(DashboardError::Store)?;
    let mut runs = Vec::with_capacity(records.len());
    for run in &records {
        let migrations = store.migration_records(run.id).await.map_err(DashboardError::Store)?;
        runs.push(RunView::new(run, &migrations, inner.live.run(run.id).as_ref()));
    }
    Ok(Json(RunList { runs }))
}

async fn find_run(dashboard: &Dashboard, run: RunId) -> Result<RunRecord, ApiError> {
    dashboard
        .inner
        .orchestrator
        .store()
        .run(run)
        .await
        .map_err(DashboardError::Store)?
        .ok_or_else(|| ApiError::not_found(format!("there is no run {run}")))
}

#[derive(Serialize, Default)]
struct MigrationRejects {
    total: u64,
    /// By stage, named as in rejects (`extract`, `transform`, `validate`, `load`).
    by_stage: BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct RejectsSummary {
    total: u64,
    /// False when the quarantine was too large to count in full.
    complete: bool,
    by_migration: BTreeMap<MigrationName, MigrationRejects>,
}

#[derive(Serialize)]
pub(crate) struct RunDetail {
    run: RunView,
    migrations: Vec<RecordView>,
    rejects: RejectsSummary,
}

/// One run: its record, each migration's record (with live progress), the rejects counted.
pub(crate) async fn detail(
    State(dashboard): State<Dashboard>,
    RunIdParam(id): RunIdParam,
) -> Result<Json<RunDetail>, ApiError> {
    let run = find_run(&dashboard, id).await?;
    let inner = &dashboard.inner;
    let store = inner.orchestrator.store();
    let mut records = store.migration_records(id).await.map_err(DashboardError::Store)?;
    let position = |name: &MigrationName| run.plan.iter().position(|n| n == name).unwrap_or(usize::MAX);
    records.sort_by_key(|r| position(&r.migration));
    let live = inner.live.run(id);
    let migrations = records
        .iter()
        .map(|record| RecordView::new(record, live.as_ref().and_then(|l| l.migrations.get(&record.migration))))
        .collect();

    let mut summary = RejectsSummary { total: 0, complete: true, by_migration: BTreeMap::new() };
    let page = 1000;
    let mut offset = 0;
    loop {
        let rejects = store.rejects(id, None, page, offset).await.map_err(DashboardError::Store)?;
        for reject in &rejects {
            let entry = summary.by_migration.entry(reject.migration.clone()).or_default();
            entry.total += 1;
            *entry.by_stage.entry(stage_name(reject.reject.stage)).or_default() += 1;
            summary.total += 1;
        }
        offset += rejects.len();
        if rejects.len() < page {
            break;
        }
        if offset >= REJECTS_COUNTED {
            summary.complete = false;
            break;
        }
    }
    Ok(Json(RunDetail { run: RunView::new(&run, &records, live.as_ref()), migrations, rejects: summary }))
}

/// A stage as serde names it (`validate`, `run_store`), the way rejects carry it.
fn stage_name(stage: Stage) -> String {
    match serde_json::to_value(stage) {
        Ok(serde_json::Value::String(name)) => name,
        _ => stage.to_string(),
    }
}

#[derive(Serialize)]
struct Started {
    run: RunId,
    status: RunStatus,
    links: Links,
}

#[derive(Serialize)]
struct Links {
    run: String,
    cancel: String,
    events: &'static str,
}

/// Starts a run in the background; answers `202` with its id as soon as it has one.
pub(crate) async fn start(
    State(dashboard): State<Dashboard>,
    JsonBody(options): JsonBody<RunOptions>,
) -> Result<Response, ApiError> {
    let started = dashboard.start_run(options).await?;
    let run = started.run;
    let body = Started {
        run,
        status: RunStatus::Running,
        links: Links { run: format!("api/runs/{run}"), cancel: format!("api/runs/{run}/cancel"), events: "api/events" },
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// The body of a cancel: nothing yet, but it must be empty or a JSON object.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {}

#[derive(Serialize)]
struct Cancelled {
    run: RunId,
    cancelled: bool,
    message: String,
}

/// Cancels a run this dashboard started: it stops at its next batch boundary, resumable.
pub(crate) async fn cancel(
    State(dashboard): State<Dashboard>,
    RunIdParam(run): RunIdParam,
    JsonBody(CancelBody {}): JsonBody<CancelBody>,
) -> Result<Response, ApiError> {
    match dashboard.inner.control.cancel(run).await? {
        CancelOutcome::Cancelled => {
            let message = format!("run {run} stops at its next batch boundary; run it again to resume");
            Ok((StatusCode::ACCEPTED, Json(Cancelled { run, cancelled: true, message })).into_response())
        }
        CancelOutcome::NoSuchRun => Err(ApiError::not_found(format!("there is no run {run}"))),
        CancelOutcome::Finished(status) => {
            let status = serde_json::to_value(status).ok().and_then(|s| s.as_str().map(str::to_owned));
            Err(ApiError::conflict(format!(
                "run {run} is over ({}); nothing to cancel",
                status.unwrap_or_else(|| "finished".into())
            )))
        }
        CancelOutcome::NotStartedHere => Err(ApiError::conflict(format!(
            "run {run} was not started from this dashboard, so it cannot be cancelled here; stop it where it runs"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectsQuery {
    migration: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

#[derive(Serialize)]
pub(crate) struct RejectsPage {
    run: RunId,
    migration: Option<MigrationName>,
    offset: usize,
    /// The limit applied (requests over the maximum are capped).
    limit: usize,
    rejects: Vec<RejectView>,
    /// The offset of the next page, when there is one.
    next_offset: Option<usize>,
}

/// A page of a run's rejects, optionally of one migration, in the order they were recorded.
pub(crate) async fn rejects(
    State(dashboard): State<Dashboard>,
    RunIdParam(id): RunIdParam,
    params: Result<Query<RejectsQuery>, QueryRejection>,
) -> Result<Json<RejectsPage>, ApiError> {
    let params = query(params)?;
    let limit = params.limit.unwrap_or(REJECTS_DEFAULT);
    if limit == 0 {
        return Err(ApiError::bad_request("`limit` must be at least 1"));
    }
    let limit = limit.min(REJECTS_MAX);
    let offset = params.offset.unwrap_or(0);
    let run = find_run(&dashboard, id).await?;
    let migration = params.migration.filter(|m| !m.is_empty()).map(MigrationName::new);
    if let Some(name) = &migration {
        if dashboard.inner.orchestrator.migration(name).is_none() && !run.plan.contains(name) {
            return Err(ApiError::not_found(format!("no migration named `{name}` is registered or in run {id}")));
        }
    }
    let store = dashboard.inner.orchestrator.store();
    let mut page = store.rejects(id, migration.as_ref(), limit + 1, offset).await.map_err(DashboardError::Store)?;
    let next_offset = (page.len() > limit).then_some(offset + limit);
    page.truncate(limit);
    Ok(Json(RejectsPage {
        run: id,
        migration,
        offset,
        limit,
        rejects: page.into_iter().map(RejectView::from).collect(),
        next_offset,
    }))
}
