//! `GET /api/processes/{target}/logs` and `GET /api/logs`: log tails, or
//! with `follow=true` a stream of new lines; `POST …/flush`.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use pmdaemon_core::api::{FlushResponse, LogsQuery, LogsResponse};

use super::typed::Answer;
use super::{ApiError, ApiResult, AppState};

/// Default number of lines, as in PM2.
const DEFAULT_LINES: usize = 15;

/// The tails of one target's logs, or with `follow` a stream of lines.
pub async fn target(
    State(state): State<AppState>,
    Path(target): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Result<Answer<LogsResponse>, ApiError> {
    answer(state, Some(target), query).await
}

/// The tails of every instance's logs, or with `follow` a stream of lines.
pub async fn all(
    State(state): State<AppState>,
    Query(query): Query<LogsQuery>,
) -> Result<Answer<LogsResponse>, ApiError> {
    answer(state, None, query).await
}

async fn answer(
    state: AppState,
    target: Option<String>,
    query: LogsQuery,
) -> Result<Answer<LogsResponse>, ApiError> {
    let lines = query.lines.unwrap_or(DEFAULT_LINES);
    if !query.follow {
        let tails = state
            .supervisor
            .logs(target.as_deref(), lines, query.stream)
            .await?;
        return Ok(Answer::Json(tails));
    }
    let sources = state
        .supervisor
        .log_sources(target.as_deref(), query.stream)?;
    let receiver = crate::logs::follow::follow(sources, lines);
    // The stream ends when the daemon has stopped the apps: the client sees
    // a clean end, not a broken connection.
    let stopped = Box::pin(state.supervisor.stopped());
    let stream = futures_util::stream::unfold(
        (receiver, stopped),
        |(mut receiver, mut stopped)| async move {
            let chunk = tokio::select! {
                biased;
                chunk = receiver.recv() => chunk,
                () = &mut stopped => None,
            };
            chunk.map(|chunk| {
                (
                    Ok::<_, std::convert::Infallible>(chunk),
                    (receiver, stopped),
                )
            })
        },
    );
    Ok(Answer::Stream(
        (
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            Body::from_stream(stream),
        )
            .into_response(),
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
