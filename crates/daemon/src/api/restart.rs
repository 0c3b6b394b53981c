//! `POST /api/processes/{target}/restart`.

use axum::extract::{Path, State};
use axum::Json;
use pmdaemon_core::api::{ProcessInfo, RestartRequest};

use super::typed::OptionalJson;
use super::{to_completion, ApiResult, AppState};
use crate::supervisor::Action;

/// `POST /api/processes/{target}/restart`, with an optional
/// [`RestartRequest`] body.
pub async fn restart(
    State(state): State<AppState>,
    Path(target): Path<String>,
    OptionalJson(request): OptionalJson<RestartRequest>,
) -> ApiResult<Vec<ProcessInfo>> {
    let supervisor = state.supervisor;
    if let Some(env) = request.env {
        supervisor.update_env(&target, env)?;
    }
    Ok(Json(
        to_completion(async move {
            supervisor
                .control(&target, Action::Restart, request.port)
                .await
        })
        .await?,
    ))
}
