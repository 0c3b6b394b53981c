//! `POST /api/processes/{app}/scale`.

use axum::extract::{Path, State};
use axum::Json;
use pmdaemon_core::api::{ProcessInfo, ScaleRequest};

use super::{to_completion, ApiResult, AppState};

/// `POST /api/processes/{app}/scale`.
pub async fn scale(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(request): Json<ScaleRequest>,
) -> ApiResult<Vec<ProcessInfo>> {
    let supervisor = state.supervisor;
    Ok(Json(
        to_completion(async move { supervisor.scale(&app, &request).await }).await?,
    ))
}
