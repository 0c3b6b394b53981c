//! `POST /api/processes/{target}/stop`.

use axum::extract::{Path, State};
use pmdaemon_core::api::ProcessInfo;

use super::control::act;
use super::{ApiResult, AppState};
use crate::supervisor::Action;

/// `POST /api/processes/{target}/stop`: returns once no process is left.
pub async fn stop(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Vec<ProcessInfo>> {
    act(state, target, Action::Stop).await
}
