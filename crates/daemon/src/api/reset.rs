//! `POST /api/processes/{target}/reset`.

use axum::extract::{Path, State};
use axum::Json;
use pmdaemon_core::api::ProcessInfo;

use super::{ApiResult, AppState};

/// `POST /api/processes/{target}/reset`: zero the restart counters.
pub async fn reset(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Vec<ProcessInfo>> {
    Ok(Json(state.supervisor.reset(&target).await?))
}
