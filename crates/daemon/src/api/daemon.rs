//! `GET /api/version`, `POST /api/daemon/kill`, `GET /openapi.json` and,
//! on TCP, `GET /health`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pmdaemon_core::api::{KillResponse, VersionInfo};
use pmdaemon_core::VERSION;

use super::AppState;

/// The daemon's version and pid.
pub async fn version() -> Json<VersionInfo> {
    Json(VersionInfo {
        version: VERSION.to_string(),
        pid: std::process::id(),
    })
}

/// `GET /health`: the daemon answers (for load balancers and probes; open
/// without the key, so it tells nothing else).
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Stops every app (parked: the next daemon keeps them stopped until
/// `resurrect`), answers, then lets the daemon exit.
pub async fn kill(State(state): State<AppState>) -> Json<KillResponse> {
    // In its own task: a client that goes away (Ctrl-C on a slow kill) does
    // not leave the daemon half shut down.
    let stopping = tokio::spawn(async move {
        state.supervisor.park();
        // Parked on disk before anything stops: a daemon that dies during
        // the kill does not bring the apps back.
        state.supervisor.persist_now().await;
        let stopped = state.supervisor.shutdown().await;
        state.shutdown.notify_one();
        stopped
    });
    Json(KillResponse {
        stopped: stopping.await.unwrap_or_default(),
        pid: std::process::id(),
    })
}

/// `POST /api/resurrect`: starts what `pmdaemon kill` stopped.
pub async fn resurrect(
    State(state): State<AppState>,
) -> Result<Json<Vec<pmdaemon_core::api::ProcessInfo>>, super::ApiError> {
    let supervisor = state.supervisor;
    Ok(Json(
        super::to_completion(async move { supervisor.resurrect().await }).await?,
    ))
}

/// `POST /api/save`: the running apps to `dump.json`.
pub async fn save(
    State(state): State<AppState>,
) -> Result<Json<pmdaemon_core::api::SaveResponse>, super::ApiError> {
    Ok(Json(state.supervisor.save().await?))
}

/// `GET /openapi.json`: the API described from its types (built once).
pub async fn openapi() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        serde_json::to_string(&pmdaemon_core::openapi::document()).unwrap_or_default()
    });
    ([(header::CONTENT_TYPE, "application/json")], body.as_str()).into_response()
}
