//! `DELETE /api/processes/{target}`.

use axum::extract::{Path, State};
use pmdaemon_core::api::ProcessInfo;

use super::control::act;
use super::{ApiResult, AppState};
use crate::supervisor::Action;

/// `DELETE /api/processes/{target}`.
pub async fn delete(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Vec<ProcessInfo>> {
    act(state, target, Action::Delete).await
}
