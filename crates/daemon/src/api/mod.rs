//! The HTTP/JSON API: one axum router, served on the Unix socket and, once
//! `pmdaemon web` enables it, on TCP behind [`crate::web::auth`]. One file
//! per verb.

mod control;
mod daemon;
mod delete;
mod errors;
mod logs;
mod metrics;
mod processes;
mod reload;
mod restart;
mod scale;
mod start;
mod stop;
mod web;
mod ws;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pmdaemon_core::api::{routes, ErrorBody, VERSION_HEADER};
use pmdaemon_core::web::{HEALTH_ROUTE, OPENAPI_ROUTE, WEB_ROUTE, WS_ROUTE};
use pmdaemon_core::VERSION;
use tokio::sync::Notify;

use crate::supervisor::Supervisor;
use crate::web::{auth, Door, Opened};
use crate::Error;

/// The largest request body accepted over TCP (an ecosystem file's apps
/// fit many times over); the socket takes
/// [`pmdaemon_core::api::MAX_SOCKET_BODY`].
pub const MAX_BODY: usize = 1024 * 1024;

/// Runs an operation in its own task and waits for it: a client that goes
/// away (Ctrl-C, a dropped connection) does not cancel it half-way, which
/// would leave an app half-changed.
pub(crate) async fn to_completion<T: Send + 'static>(
    operation: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::spawn(operation).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(err) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the operation failed: {err}"),
        )),
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The process table.
    pub supervisor: Arc<Supervisor>,
    /// Notified when the daemon should exit.
    pub shutdown: Arc<Notify>,
    /// The TCP door.
    pub web: Arc<Door>,
}

/// Marks a request that came over TCP without the key (allowed because
/// reads are open): details leave out the whole environment.
#[derive(Debug, Clone, Copy)]
pub struct HideEnv;

/// The router of the Unix socket: every route, and the web setting.
pub fn socket_router(state: AppState) -> Router {
    finish(
        routes().route(
            WEB_ROUTE,
            get(web::status).post(web::set).delete(web::unset),
        ),
        state,
        pmdaemon_core::api::MAX_SOCKET_BODY,
    )
}

/// The router of the TCP door: every route, `/health`, the dashboard, and
/// the key check; `opened` tells its WebSockets when the door closes.
pub fn tcp_router(state: AppState, guard: Arc<auth::Guard>, opened: Opened) -> Router {
    let routes = routes()
        .route(HEALTH_ROUTE, get(daemon::health))
        .merge(crate::web::dashboard::routes());
    finish(routes, state, MAX_BODY)
        .layer(middleware::from_fn_with_state(guard, auth::check))
        .layer(axum::Extension(opened))
}

/// What both doors serve: errors as JSON (also the framework's own), the
/// body limit, the version check.
fn finish(routes: Router<AppState>, state: AppState, max_body: usize) -> Router {
    routes
        .fallback(errors::not_found)
        .layer(middleware::from_fn(check_version))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(errors::as_json))
        .with_state(state)
}

/// The routes shared by every transport.
fn routes() -> Router<AppState> {
    Router::new()
        .route(routes::VERSION, get(daemon::version))
        .route(routes::KILL, post(daemon::kill))
        .route(routes::RESURRECT, post(daemon::resurrect))
        .route(
            routes::PROCESSES,
            get(processes::list).post(processes::start),
        )
        .route(routes::APPLY, post(processes::apply))
        .route(routes::SYSTEM, get(metrics::system))
        .route(routes::METRICS, get(metrics::metrics))
        .route(routes::PROCESS, get(processes::info).delete(delete::delete))
        .route(routes::START, post(start::start))
        .route(routes::STOP, post(stop::stop))
        .route(routes::RESTART, post(restart::restart))
        .route(routes::SCALE, post(scale::scale))
        .route(routes::RELOAD, post(reload::reload))
        .route(routes::LOGS, get(logs::target))
        .route(routes::ALL_LOGS, get(logs::all))
        .route(routes::FLUSH_ALL, post(logs::flush_all))
        .route(routes::FLUSH, post(logs::flush_target))
        .route(WS_ROUTE, get(ws::ws))
        .route(OPENAPI_ROUTE, get(daemon::openapi))
}

/// A CLI from another version is told so instead of being misunderstood.
/// Version and kill stay reachable so that the old daemon can be replaced.
async fn check_version(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let exempt = path == routes::VERSION || path == routes::KILL;
    let theirs = request
        .headers()
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut response = match theirs {
        Some(theirs) if theirs != VERSION && !exempt => ApiError {
            status: StatusCode::CONFLICT,
            message: format!(
                "the running daemon is pmdaemon {VERSION} but this CLI is {theirs}; run `pmdaemon kill`, then `pmdaemon resurrect` with this CLI (the new daemon starts the apps kill stopped)"
            ),
        }
        .into_response(),
        _ => next.run(request).await,
    };
    response
        .headers_mut()
        .insert(VERSION_HEADER, HeaderValue::from_static(VERSION));
    response
}

/// An error as the API returns it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::UnknownTarget { .. } => StatusCode::NOT_FOUND,
            Error::DuplicateName { .. } => StatusCode::CONFLICT,
            Error::BadCommand(_)
            | Error::UnknownUser { .. }
            | Error::CannotSwitchUser { .. }
            | Error::Invalid(_)
            | Error::NoPorts(_)
            | Error::Web(_)
            | Error::ScaleToZero { .. }
            | Error::PortNotShared { .. }
            | Error::PortsForOneApp => StatusCode::UNPROCESSABLE_ENTITY,
            // The state of the apps is in the way, not the request's form.
            Error::ReloadAborted { .. }
            | Error::NameClash { .. }
            | Error::SharedPortFixed { .. } => StatusCode::CONFLICT,
            Error::PortInUse { .. } => StatusCode::CONFLICT,
            Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: error.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<Json<T>, ApiError>;
