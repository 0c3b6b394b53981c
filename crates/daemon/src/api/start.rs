//! `POST /api/processes/{target}/start`.

use axum::extract::{Path, State};
use pmdaemon_core::api::ProcessInfo;

use super::control::act;
use super::{ApiResult, AppState};
use crate::supervisor::Action;

/// `POST /api/processes/{target}/start`.
pub async fn start(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Vec<ProcessInfo>> {
    act(state, target, Action::Start).await
}
