//! Start, stop, restart and delete of existing targets.

use axum::extract::{Path, State};
use axum::Json;
use pmdaemon_core::api::ProcessInfo;

use super::{ApiResult, AppState};
use crate::supervisor::Action;

async fn act(state: AppState, target: String, action: Action) -> ApiResult<Vec<ProcessInfo>> {
    Ok(Json(state.supervisor.control(&target, action).await?))
}

/// `POST /api/processes/{target}/start`.
pub async fn start(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Vec<ProcessInfo>> {
    act(state, target, Action::Start).await
}

/// `POST /api/processes/{target}/stop`: returns once no process is left.
pub async fn stop(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Vec<ProcessInfo>> {
    act(state, target, Action::Stop).await
}

/// `POST /api/processes/{target}/restart`.
pub async fn restart(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Vec<ProcessInfo>> {
    act(state, target, Action::Restart).await
}

/// `DELETE /api/processes/{target}`.
pub async fn delete(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Vec<ProcessInfo>> {
    act(state, target, Action::Delete).await
}
