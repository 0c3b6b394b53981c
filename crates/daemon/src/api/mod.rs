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
mod reset;
mod restart;
mod scale;
mod signal;
mod start;
mod stop;
mod typed;
mod web;
mod ws;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pmdaemon_core::api::endpoints::{
    AllLogs, Apply, Delete, Flush, FlushAll, Info, Kill, List, Logs, Reload, Reset, Restart,
    Resurrect, Save, Scale, Signal, Start, StartApp, Stop, System, Version, WebSet, WebStatusOf,
    WebUnset,
};
use pmdaemon_core::api::{routes, ErrorBody, VERSION_HEADER};
use pmdaemon_core::web::{HEALTH_ROUTE, OPENAPI_ROUTE, WS_ROUTE};
use pmdaemon_core::VERSION;
use tokio::sync::Notify;

use self::typed::serve;
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
    let routes = routes();
    let routes = serve::<WebStatusOf, _, _>(routes, web::status);
    let routes = serve::<WebSet, _, _>(routes, web::set);
    let routes = serve::<WebUnset, _, _>(routes, web::unset);
    finish(routes, state, pmdaemon_core::api::MAX_SOCKET_BODY)
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

/// The routes shared by every transport: each endpoint of
/// [`pmdaemon_core::api::endpoints`] with its handler, then the routes that
/// are not JSON (metrics, the WebSocket, the OpenAPI document).
fn routes() -> Router<AppState> {
    let r = Router::new();
    let r = serve::<Version, _, _>(r, daemon::version);
    let r = serve::<Kill, _, _>(r, daemon::kill);
    let r = serve::<Resurrect, _, _>(r, daemon::resurrect);
    let r = serve::<List, _, _>(r, processes::list);
    let r = serve::<StartApp, _, _>(r, processes::start);
    let r = serve::<Apply, _, _>(r, processes::apply);
    let r = serve::<System, _, _>(r, metrics::system);
    let r = serve::<Info, _, _>(r, processes::info);
    let r = serve::<Delete, _, _>(r, delete::delete);
    let r = serve::<Start, _, _>(r, start::start);
    let r = serve::<Stop, _, _>(r, stop::stop);
    let r = serve::<Restart, _, _>(r, restart::restart);
    let r = serve::<Scale, _, _>(r, scale::scale);
    let r = serve::<Reload, _, _>(r, reload::reload);
    let r = serve::<Reset, _, _>(r, reset::reset);
    let r = serve::<Signal, _, _>(r, signal::signal);
    let r = serve::<Save, _, _>(r, daemon::save);
    let r = serve::<Logs, _, _>(r, logs::target);
    let r = serve::<AllLogs, _, _>(r, logs::all);
    let r = serve::<FlushAll, _, _>(r, logs::flush_all);
    let r = serve::<Flush, _, _>(r, logs::flush_target);
    r.route(routes::METRICS, get(metrics::metrics))
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
        Self {
            status: status_of(&error),
            message: error.to_string(),
        }
    }
}

/// The HTTP status of an error: 4xx for what the request or the state of
/// the apps is in the way of, 5xx for what failed on the daemon's side.
fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::UnknownTarget { .. } | Error::Deleted => StatusCode::NOT_FOUND,
        // An app of a file (or of the dump) that cannot run: as its cause.
        Error::AppCannotRun { source, .. } => status_of(source),
        // A program that vanished or lost its permissions since it was
        // checked, or an argument exec cannot pass, is the request's
        // problem; EMFILE or ENOMEM is ours.
        Error::Spawn { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound
            | std::io::ErrorKind::PermissionDenied
            | std::io::ErrorKind::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        },
        Error::Unusable { .. }
        | Error::ProgramNotFound { .. }
        | Error::BadDump { .. }
        | Error::ScaleAmbiguous
        | Error::NoSuchSignal { .. }
        | Error::UnknownUser { .. }
        | Error::CannotSwitchUser { .. }
        | Error::UserCannotReach { .. }
        | Error::Invalid(_)
        | Error::NoPorts(_)
        | Error::Web(_)
        | Error::ScaleToZero { .. }
        | Error::PortNotShared { .. }
        | Error::PortsForOneApp => StatusCode::UNPROCESSABLE_ENTITY,
        // The state of the apps is in the way, not the request's form.
        Error::DuplicateName { .. }
        | Error::ReloadAborted { .. }
        | Error::NameClash { .. }
        | Error::SharedPortFixed { .. }
        | Error::PortInUse { .. }
        | Error::NotReady(_)
        | Error::NotRunning
        | Error::NothingToSignal { .. } => StatusCode::CONFLICT,
        Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_app_that_cannot_run_has_its_causes_status() {
        let app = |source| Error::AppCannotRun {
            app: "web".into(),
            source: Box::new(source),
        };
        let taken = Error::PortInUse {
            port: 3000,
            holder: "nginx".into(),
        };
        assert_eq!(status_of(&app(taken)), StatusCode::CONFLICT);
        assert_eq!(
            status_of(&app(Error::ShuttingDown)),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let spawn = |kind| Error::Spawn {
            program: "x".into(),
            source: std::io::Error::from(kind),
        };
        assert_eq!(
            status_of(&spawn(std::io::ErrorKind::NotFound)),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            status_of(&spawn(std::io::ErrorKind::OutOfMemory)),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
