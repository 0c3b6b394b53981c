//! `POST /api/processes/{target}/reload`.

use axum::extract::{Path, State};
use pmdaemon_core::api::{ProcessInfo, ReloadRequest};

use super::typed::{Answer, OptionalJson};
use super::{to_completion, ApiError, AppState};

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
    OptionalJson(request): OptionalJson<ReloadRequest>,
) -> Result<Answer<Vec<ProcessInfo>>, ApiError> {
    use axum::response::IntoResponse;
    let supervisor = state.supervisor;
    if let Some(env) = request.env {
        supervisor.update_env(&target, env)?;
    }
    if !request.progress {
        let infos =
            to_completion(async move { supervisor.reload(&target, request.parallel, None).await })
                .await?;
        return Ok(Answer::Json(infos));
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
    Ok(Answer::Stream(
        (
            [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
            axum::body::Body::from_stream(stream),
        )
            .into_response(),
    ))
}
