//! `GET /api/processes`, `POST /api/processes`, `GET /api/processes/{target}`.

use axum::extract::{Path, State};
use axum::Json;
use pmdaemon_core::api::{ApplyRequest, ApplyResponse, ProcessDetail, ProcessInfo, StartRequest};

use super::{ApiResult, AppState};

/// Every instance.
pub async fn list(State(state): State<AppState>) -> Json<Vec<ProcessInfo>> {
    Json(state.supervisor.list())
}

/// Registers and starts an app.
pub async fn start(
    State(state): State<AppState>,
    Json(request): Json<StartRequest>,
) -> ApiResult<Vec<ProcessInfo>> {
    Ok(Json(state.supervisor.start_app(request).await?))
}

/// The instances a target names, in full.
pub async fn info(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Vec<ProcessDetail>> {
    Ok(Json(state.supervisor.detail(&target)?))
}

/// Brings the apps of an ecosystem file to their configuration.
pub async fn apply(
    State(state): State<AppState>,
    Json(request): Json<ApplyRequest>,
) -> ApiResult<ApplyResponse> {
    Ok(Json(state.supervisor.apply(request).await?))
}
