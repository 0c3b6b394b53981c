//! `GET /api/processes/{target}/logs` and `GET /api/logs`: log tails.

use axum::extract::{Path, Query, State};
use axum::Json;
use pmdaemon_core::api::{FlushResponse, LogsQuery, LogsResponse};

use super::{ApiResult, AppState};

/// Default number of lines, as in PM2.
const DEFAULT_LINES: usize = 15;

/// The tails of one target's logs.
pub async fn target(
    State(state): State<AppState>,
    Path(target): Path<String>,
    Query(query): Query<LogsQuery>,
) -> ApiResult<LogsResponse> {
    let lines = query.lines.unwrap_or(DEFAULT_LINES);
    Ok(Json(
        state
            .supervisor
            .logs(Some(&target), lines, query.stream)
            .await?,
    ))
}

/// The tails of every instance's logs.
pub async fn all(
    State(state): State<AppState>,
    Query(query): Query<LogsQuery>,
) -> ApiResult<LogsResponse> {
    let lines = query.lines.unwrap_or(DEFAULT_LINES);
    Ok(Json(
        state.supervisor.logs(None, lines, query.stream).await?,
    ))
}

/// `POST /api/processes/{target}/flush`.
pub async fn flush_target(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<FlushResponse> {
    let files = state.supervisor.flush(Some(&target)).await?;
    Ok(Json(FlushResponse { files }))
}

/// `POST /api/flush`: every app's logs.
pub async fn flush_all(State(state): State<AppState>) -> ApiResult<FlushResponse> {
    let files = state.supervisor.flush(None).await?;
    Ok(Json(FlushResponse { files }))
}
