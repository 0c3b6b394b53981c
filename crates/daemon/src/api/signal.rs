//! `POST /api/processes/{target}/signal`.

use axum::extract::{Path, State};
use axum::Json;
use pmdaemon_core::api::{ProcessInfo, SignalRequest};

use super::{ApiResult, AppState};

/// `POST /api/processes/{target}/signal`: the signal to each running
/// process of the target.
pub async fn signal(
    State(state): State<AppState>,
    Path(target): Path<String>,
    Json(request): Json<SignalRequest>,
) -> ApiResult<Vec<ProcessInfo>> {
    Ok(Json(
        state.supervisor.signal(&target, &request.signal).await?,
    ))
}
