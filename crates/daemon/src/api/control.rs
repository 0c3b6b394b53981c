//! What the verbs that act on existing targets share: carrying out an
//! [`Action`] to completion. Each verb
//! has its own file (`start`, `stop`, `restart`, `delete`, `scale`,
//! `reload`), as the CLI does.

use axum::Json;
use pmdaemon_core::api::ProcessInfo;

use super::{to_completion, ApiResult, AppState};
use crate::supervisor::Action;

pub(super) async fn act(
    state: AppState,
    target: String,
    action: Action,
) -> ApiResult<Vec<ProcessInfo>> {
    let supervisor = state.supervisor;
    Ok(Json(
        to_completion(async move { supervisor.control(&target, action, None).await }).await?,
    ))
}
