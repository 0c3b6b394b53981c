//! Start, stop, restart, delete and scale of existing targets.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use pmdaemon_core::api::{ProcessInfo, ReloadRequest, RestartRequest, ScaleRequest};

use super::{to_completion, ApiError, ApiResult, AppState};
use crate::supervisor::Action;

async fn act(state: AppState, target: String, action: Action) -> ApiResult<Vec<ProcessInfo>> {
    let supervisor = state.supervisor;
    Ok(Json(
        to_completion(async move { supervisor.control(&target, action, None).await }).await?,
    ))
}

/// `POST /api/processes/{target}/start`.
pub async fn start(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Vec<ProcessInfo>> {
    act(state, target, Action::Start).await
}

/// `POST /api/processes/{target}/stop`: returns once no process is left.
pub async fn stop(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Vec<ProcessInfo>> {
    act(state, target, Action::Stop).await
}

/// `POST /api/processes/{target}/restart`, with an optional
/// [`RestartRequest`] body.
pub async fn restart(
    State(state): State<AppState>,
    Path(target): Path<String>,
    body: Bytes,
) -> ApiResult<Vec<ProcessInfo>> {
    let request: RestartRequest = optional_body(&body, "restart")?;
    let supervisor = state.supervisor;
    Ok(Json(
        to_completion(async move {
            supervisor
                .control(&target, Action::Restart, request.port)
                .await
        })
        .await?,
    ))
}

/// `DELETE /api/processes/{target}`.
pub async fn delete(
    State(state): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<Vec<ProcessInfo>> {
    act(state, target, Action::Delete).await
}

/// `POST /api/processes/{app}/scale`.
pub async fn scale(
    State(state): State<AppState>,
    Path(app): Path<String>,
    Json(request): Json<ScaleRequest>,
) -> ApiResult<Vec<ProcessInfo>> {
    let supervisor = state.supervisor;
    Ok(Json(
        to_completion(async move { supervisor.scale(&app, request.instances).await }).await?,
    ))
}

/// `POST /api/processes/{target}/reload`, with an optional
/// [`ReloadRequest`] body: a rolling restart that stops at the first
/// instance that does not become ready.
///
/// The rollout runs in its own task: a client that goes away does not stop
/// it half-way. With `progress`, the answer is a stream of
/// [`pmdaemon_core::api::ReloadEvent`] lines ending with `finished`.
pub async fn reload(
    State(state): State<AppState>,
    Path(target): Path<String>,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let request: ReloadRequest = optional_body(&body, "reload")?;
    let supervisor = state.supervisor;
    if !request.progress {
        let infos =
            to_completion(async move { supervisor.reload(&target, request.parallel, None).await })
                .await?;
        return Ok(Json(infos).into_response());
    }
    // Unknown targets are refused before the stream starts.
    supervisor.detail(&target)?;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Its `finished` event carries any error.
        let _ = supervisor
            .reload(&target, request.parallel, Some(&sender))
            .await;
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Some((
            Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(line)),
            receiver,
        ))
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// A JSON body that may be left out (then the defaults apply).
fn optional_body<T: serde::de::DeserializeOwned + Default>(
    body: &Bytes,
    what: &str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad {what} request: {err}"),
        )
    })
}
