//! The OpenAPI 3.1 document of the API (`GET /openapi.json`), generated
//! from the wire types of [`crate::api`] with utoipa, so that it cannot
//! drift from what the daemon parses and answers.
//!
//! The functions below exist only to carry each route's description; the
//! daemon's handlers live in its `api` module. `/api/web` is left out: it
//! is served on the Unix socket only.

#![allow(dead_code)]

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::*;
use crate::config::{AppConfig, CheckType, ExecMode, HealthCheck, LogType, SharedPort};

/// The document, as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = crate::VERSION.to_string();
    doc
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pmdaemon",
        description = "The API of the pmdaemon process manager: the same routes on its Unix socket and, with `pmdaemon web`, on TCP. Errors are `{\"error\": \"...\"}`."
    ),
    paths(
        version, list, start_app, apply, info, delete, start, stop, restart, reload, scale,
        reset, signal, save, target_logs, all_logs, flush_all, flush_target, system, metrics, kill,
        resurrect, health, ws,
        openapi
    ),
    components(schemas(
        AppConfig, HealthCheck, CheckType, ExecMode, LogType, SharedPort, Event, ClientMessage,
        Subscribe, EventKind, MetricSample
    )),
    modifiers(&Security),
    security(("bearer" = []), ("api_key" = []))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The target path parameter: an app name, an instance name, an id or `all`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct Target {
    /// An app name (`web`), an instance name (`web-0`), an id, or `all`.
    target: String,
}

/// The query of the log routes.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct LogsParams {
    /// How many lines from the end of each file (default 15).
    lines: Option<usize>,
    /// Only this stream.
    stream: Option<LogStream>,
    /// Stream new lines as newline-separated `LogLine` objects.
    follow: Option<bool>,
}

#[utoipa::path(get, path = routes::VERSION, tag = "daemon",
    responses((status = 200, description = "The daemon's version", body = VersionInfo)))]
fn version() {}

#[utoipa::path(get, path = routes::PROCESSES, tag = "processes",
    responses((status = 200, description = "Every instance", body = Vec<ProcessInfo>)))]
fn list() {}

#[utoipa::path(post, path = routes::PROCESSES, tag = "processes", request_body = StartRequest,
    responses(
        (status = 200, description = "The new app's instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn start_app() {}

#[utoipa::path(post, path = routes::APPLY, tag = "processes", request_body = ApplyRequest,
    responses(
        (status = 200, description = "What was done to each app", body = ApplyResponse),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn apply() {}

#[utoipa::path(get, path = routes::PROCESS, tag = "processes", params(Target),
    responses(
        (status = 200, description = "The instances in full", body = Vec<ProcessDetail>),
        (status = 404, description = "No such target", body = ErrorBody)))]
fn info() {}

#[utoipa::path(delete, path = routes::PROCESS, tag = "control", params(Target),
    responses(
        (status = 200, description = "The deleted instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn delete() {}

#[utoipa::path(post, path = routes::START, tag = "control", params(Target),
    responses(
        (status = 200, description = "The instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn start() {}

#[utoipa::path(post, path = routes::STOP, tag = "control", params(Target),
    responses(
        (status = 200, description = "The instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn stop() {}

#[utoipa::path(post, path = routes::RESTART, tag = "control", params(Target),
    request_body(content = Option<RestartRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn restart() {}

#[utoipa::path(post, path = routes::RELOAD, tag = "control", params(Target),
    request_body(content = Option<ReloadRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused, or a new process never became ready", body = ErrorBody)))]
fn reload() {}

#[utoipa::path(post, path = routes::SCALE, tag = "control", params(Target),
    request_body = ScaleRequest,
    responses(
        (status = 200, description = "The app's instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn scale() {}

#[utoipa::path(post, path = routes::RESET, tag = "control", params(Target),
    responses(
        (status = 200, description = "The instances, their restart counters at zero", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn reset() {}

#[utoipa::path(post, path = routes::SIGNAL, tag = "control", params(Target),
    request_body = SignalRequest,
    responses(
        (status = 200, description = "The instances signalled", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused, or none runs", body = ErrorBody)))]
fn signal() {}

#[utoipa::path(post, path = routes::SAVE, tag = "daemon",
    responses((status = 200, description = "The running apps were written to dump.json", body = SaveResponse)))]
fn save() {}

#[utoipa::path(get, path = routes::LOGS, tag = "logs", params(Target, LogsParams),
    responses(
        (status = 200, description = "The tails, or with `follow` a stream of lines", body = LogsResponse),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn target_logs() {}

#[utoipa::path(get, path = routes::ALL_LOGS, tag = "logs", params(LogsParams),
    responses(
        (status = 200, description = "The tails, or with `follow` a stream of lines", body = LogsResponse),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn all_logs() {}

#[utoipa::path(post, path = routes::FLUSH_ALL, tag = "logs",
    responses((status = 200, description = "The emptied files", body = FlushResponse)))]
fn flush_all() {}

#[utoipa::path(post, path = routes::FLUSH, tag = "logs", params(Target),
    responses(
        (status = 200, description = "The emptied files", body = FlushResponse),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn flush_target() {}

#[utoipa::path(get, path = routes::SYSTEM, tag = "daemon",
    responses((status = 200, description = "The host and the daemon", body = SystemInfo)))]
fn system() {}

#[utoipa::path(get, path = routes::METRICS, tag = "daemon",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
fn metrics() {}

#[utoipa::path(post, path = routes::KILL, tag = "daemon",
    responses((status = 200, description = "The daemon stops its apps and exits", body = KillResponse)))]
fn kill() {}

#[utoipa::path(post, path = routes::RESURRECT, tag = "daemon",
    responses((status = 200, description = "The instances `pmdaemon kill` parked, started again", body = [ProcessInfo]),
        (status = 422, description = "One of them could not start", body = ErrorBody)))]
fn resurrect() {}

#[utoipa::path(get, path = crate::web::HEALTH_ROUTE, tag = "daemon", security(()),
    responses((status = 200, description = "`{\"status\":\"ok\"}`: the daemon answers (TCP only)", body = Object)))]
fn health() {}

#[utoipa::path(get, path = crate::web::WS_ROUTE, tag = "events",
    description = "A WebSocket of `Event`s, one JSON object per text frame; the client sends `ClientMessage`s (its key first, when the door needs one and no header carried it).",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = "4XX", description = "Not a WebSocket request, or a wrong key", body = ErrorBody)))]
fn ws() {}

#[utoipa::path(get, path = crate::web::OPENAPI_ROUTE, tag = "daemon",
    responses((status = 200, description = "This document", body = Object)))]
fn openapi() {}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_names_every_route_and_type() {
        let doc = serde_json::to_value(super::document()).unwrap_or_default();
        assert!(doc["paths"]["/api/processes/{target}/restart"]["post"].is_object());
        assert!(doc["components"]["schemas"]["AppConfig"].is_object());
        assert!(doc["components"]["schemas"]["Event"].is_object());
        assert!(doc["paths"]["/api/web"].is_null());
    }

    /// Every endpoint the daemon serves on both doors is documented with
    /// its method, and the document names no other JSON route.
    #[test]
    fn the_document_describes_exactly_the_endpoints() {
        // `/api/web` is served on the Unix socket only.
        let mut endpoints: Vec<(String, String)> = crate::api::endpoints::ALL
            .iter()
            .filter(|(_, _, route)| *route != crate::web::WEB_ROUTE)
            .map(|(_, method, route)| (route.to_string(), method.as_str().to_lowercase()))
            .collect();
        endpoints.sort();
        let doc = serde_json::to_value(super::document()).unwrap_or_default();
        let not_json = [
            crate::api::routes::METRICS,
            crate::web::HEALTH_ROUTE,
            crate::web::WS_ROUTE,
            crate::web::OPENAPI_ROUTE,
        ];
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(path, _)| !not_json.contains(&path.as_str()))
            .flat_map(|(path, methods)| {
                methods
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(method, _)| (path.clone(), method.clone()))
            })
            .collect();
        documented.sort();
        assert_eq!(documented, endpoints);
    }
}
