//! `POST /api/processes/{target}/restart`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use pmdaemon_core::api::{ProcessInfo, RestartRequest};

use super::control::optional_body;
use super::{to_completion, ApiResult, AppState};
use crate::supervisor::Action;

/// `POST /api/processes/{target}/restart`, with an optional
/// [`RestartRequest`] body.
pub async fn restart(
    State(state): State<AppState>,
    Path(target): Path<String>,
    body: Bytes,
) -> ApiResult<Vec<ProcessInfo>> {
    let request: RestartRequest = optional_body(&body, "restart")?;
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
