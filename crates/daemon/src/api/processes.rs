//! `GET /api/processes`, `POST /api/processes`, `GET /api/processes/{target}`.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use pmdaemon_core::api::{ApplyRequest, ApplyResponse, ProcessDetail, ProcessInfo, StartRequest};

use super::{ApiResult, AppState, HideEnv};

/// Every instance.
pub async fn list(State(state): State<AppState>) -> Json<Vec<ProcessInfo>> {
    Json(state.supervisor.list())
}

/// Registers and starts an app.
pub async fn start(
    State(state): State<AppState>,
    Json(request): Json<StartRequest>,
) -> ApiResult<Vec<ProcessInfo>> {
    let supervisor = state.supervisor;
    Ok(Json(
        super::to_completion(async move { supervisor.start_app(request).await }).await?,
    ))
}

/// The instances a target names, in full (secret-looking env values
/// redacted; over TCP without the key, every env value).
pub async fn info(
    State(state): State<AppState>,
    Path(target): Path<String>,
    hide_env: Option<Extension<HideEnv>>,
) -> ApiResult<Vec<ProcessDetail>> {
    let mut details = state.supervisor.detail(&target)?;
    if hide_env.is_some() {
        for detail in &mut details {
            detail
                .config
                .env
                .values_mut()
                .chain(detail.environment.values_mut())
                .for_each(|value| *value = "[redacted]".to_string());
        }
    }
    Ok(Json(details))
}

/// Brings the apps of an ecosystem file to their configuration.
pub async fn apply(
    State(state): State<AppState>,
    Json(request): Json<ApplyRequest>,
) -> ApiResult<ApplyResponse> {
    let supervisor = state.supervisor;
    Ok(Json(
        super::to_completion(async move { supervisor.apply(request).await }).await?,
    ))
}
