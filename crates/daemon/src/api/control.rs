//! What the verbs that act on existing targets share: carrying out an
//! [`Action`] to completion, and a JSON body that may be left out. Each verb
//! has its own file (`start`, `stop`, `restart`, `delete`, `scale`,
//! `reload`), as the CLI does.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::Json;
use pmdaemon_core::api::ProcessInfo;

use super::{to_completion, ApiError, ApiResult, AppState};
use crate::supervisor::Action;

pub(super) async fn act(
    state: AppState,
    target: String,
    action: Action,
) -> ApiResult<Vec<ProcessInfo>> {
    let supervisor = state.supervisor;
    Ok(Json(
        to_completion(async move { supervisor.control(&target, action, None).await }).await?,
    ))
}

/// A JSON body that may be left out (then the defaults apply).
pub(super) fn optional_body<T: serde::de::DeserializeOwned + Default>(
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
