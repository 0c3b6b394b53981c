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
        reset, signal, save, target_logs, all_logs, flush_all, flush_target, system, metrics, kill, health, ws,
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

#[utoipa::path(get, path = "/api/version", tag = "daemon",
    responses((status = 200, description = "The daemon's version", body = VersionInfo)))]
fn version() {}

#[utoipa::path(get, path = "/api/processes", tag = "processes",
    responses((status = 200, description = "Every instance", body = Vec<ProcessInfo>)))]
fn list() {}

#[utoipa::path(post, path = "/api/processes", tag = "processes", request_body = StartRequest,
    responses(
        (status = 200, description = "The new app's instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn start_app() {}

#[utoipa::path(post, path = "/api/apply", tag = "processes", request_body = ApplyRequest,
    responses(
        (status = 200, description = "What was done to each app", body = ApplyResponse),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn apply() {}

#[utoipa::path(get, path = "/api/processes/{target}", tag = "processes", params(Target),
    responses(
        (status = 200, description = "The instances in full", body = Vec<ProcessDetail>),
        (status = 404, description = "No such target", body = ErrorBody)))]
fn info() {}

#[utoipa::path(delete, path = "/api/processes/{target}", tag = "control", params(Target),
    responses(
        (status = 200, description = "The deleted instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn delete() {}

#[utoipa::path(post, path = "/api/processes/{target}/start", tag = "control", params(Target),
    responses(
        (status = 200, description = "The instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn start() {}

#[utoipa::path(post, path = "/api/processes/{target}/stop", tag = "control", params(Target),
    responses(
        (status = 200, description = "The instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn stop() {}

#[utoipa::path(post, path = "/api/processes/{target}/restart", tag = "control", params(Target),
    request_body(content = Option<RestartRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn restart() {}

#[utoipa::path(post, path = "/api/processes/{target}/reload", tag = "control", params(Target),
    request_body(content = Option<ReloadRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused, or a new process never became ready", body = ErrorBody)))]
fn reload() {}

#[utoipa::path(post, path = "/api/processes/{target}/scale", tag = "control", params(Target),
    request_body = ScaleRequest,
    responses(
        (status = 200, description = "The app's instances", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn scale() {}

#[utoipa::path(post, path = "/api/processes/{target}/reset", tag = "control", params(Target),
    responses(
        (status = 200, description = "The instances, their restart counters at zero", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn reset() {}

#[utoipa::path(post, path = "/api/processes/{target}/signal", tag = "control", params(Target),
    request_body = SignalRequest,
    responses(
        (status = 200, description = "The instances signalled", body = Vec<ProcessInfo>),
        (status = "4XX", description = "Refused, or none runs", body = ErrorBody)))]
fn signal() {}

#[utoipa::path(post, path = "/api/save", tag = "daemon",
    responses((status = 200, description = "The running apps were written to dump.json", body = SaveResponse)))]
fn save() {}

#[utoipa::path(get, path = "/api/processes/{target}/logs", tag = "logs", params(Target, LogsParams),
    responses(
        (status = 200, description = "The tails, or with `follow` a stream of lines", body = LogsResponse),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn target_logs() {}

#[utoipa::path(get, path = "/api/logs", tag = "logs", params(LogsParams),
    responses(
        (status = 200, description = "The tails, or with `follow` a stream of lines", body = LogsResponse),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn all_logs() {}

#[utoipa::path(post, path = "/api/flush", tag = "logs",
    responses((status = 200, description = "The emptied files", body = FlushResponse)))]
fn flush_all() {}

#[utoipa::path(post, path = "/api/processes/{target}/flush", tag = "logs", params(Target),
    responses(
        (status = 200, description = "The emptied files", body = FlushResponse),
        (status = "4XX", description = "Refused", body = ErrorBody)))]
fn flush_target() {}

#[utoipa::path(get, path = "/api/system", tag = "daemon",
    responses((status = 200, description = "The host and the daemon", body = SystemInfo)))]
fn system() {}

#[utoipa::path(get, path = "/metrics", tag = "daemon",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
fn metrics() {}

#[utoipa::path(post, path = "/api/daemon/kill", tag = "daemon",
    responses((status = 200, description = "The daemon stops its apps and exits", body = KillResponse)))]
fn kill() {}

#[utoipa::path(get, path = "/health", tag = "daemon", security(()),
    responses((status = 200, description = "`{\"status\":\"ok\"}`: the daemon answers (TCP only)", body = Object)))]
fn health() {}

#[utoipa::path(get, path = "/ws", tag = "events",
    description = "A WebSocket of `Event`s, one JSON object per text frame; the client sends `ClientMessage`s (its key first, when the door needs one and no header carried it).",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = "4XX", description = "Not a WebSocket request, or a wrong key", body = ErrorBody)))]
fn ws() {}

#[utoipa::path(get, path = "/openapi.json", tag = "daemon",
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
}
