//! `/api/web` (Unix socket only): the web API's setting. Not served on TCP:
//! whoever may open or move the TCP door must own the home.

use axum::extract::State;
use axum::Json;
use pmdaemon_core::web::{WebSettings, WebStatus};

use super::{ApiResult, AppState};

/// `GET /api/web`: what is served now.
pub async fn status(State(state): State<AppState>) -> Json<WebStatus> {
    Json(state.web.status().await)
}

/// `POST /api/web`: serve these settings (and keep them across restarts).
pub async fn set(
    State(state): State<AppState>,
    Json(settings): Json<WebSettings>,
) -> ApiResult<WebStatus> {
    let web = std::sync::Arc::clone(&state.web);
    Ok(Json(web.set(state, settings).await?))
}

/// `DELETE /api/web`: stop serving and forget the setting.
pub async fn unset(State(state): State<AppState>) -> ApiResult<WebStatus> {
    Ok(Json(state.web.unset().await?))
}
