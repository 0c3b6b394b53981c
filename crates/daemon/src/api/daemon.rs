//! `GET /api/version` and `POST /api/daemon/kill`.

use axum::extract::State;
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

/// Stops every app, answers, then lets the daemon exit.
pub async fn kill(State(state): State<AppState>) -> Json<KillResponse> {
    let stopped = state.supervisor.shutdown().await;
    state.shutdown.notify_one();
    Json(KillResponse {
        stopped,
        pid: std::process::id(),
    })
}
