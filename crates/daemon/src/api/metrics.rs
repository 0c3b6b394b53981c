//! `GET /metrics` (Prometheus text format) and `GET /api/system`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use pmdaemon_core::api::{ProcessInfo, Status, SystemInfo};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{ApiError, AppState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    app: String,
    instance: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SharedLabels {
    app: String,
    instance: String,
    mode: String,
    port: String,
    private_port: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    app: String,
    instance: String,
    state: String,
}

const STATUSES: [Status; 6] = [
    Status::Launching,
    Status::Online,
    Status::Stopping,
    Status::Stopped,
    Status::Errored,
    Status::WaitingRestart,
];

/// The process table as Prometheus metrics.
pub fn render(processes: &[ProcessInfo], system: &SystemInfo) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("pmdaemon");
    let cpu = Family::<InstanceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let memory = Family::<InstanceLabels, Gauge>::default();
    let restarts = Family::<InstanceLabels, Gauge>::default();
    let uptime = Family::<InstanceLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    let status = Family::<StateLabels, Gauge>::default();
    let health = Family::<StateLabels, Gauge>::default();
    let shared = Family::<SharedLabels, Gauge>::default();
    let connections = Family::<InstanceLabels, Gauge>::default();
    for process in processes {
        let labels = InstanceLabels {
            app: process.app.clone(),
            instance: process.name.clone(),
        };
        cpu.get_or_create(&labels)
            .set(f64::from(process.cpu_percent.unwrap_or(0.0)));
        memory
            .get_or_create(&labels)
            .set(process.memory_bytes.unwrap_or(0) as i64);
        restarts
            .get_or_create(&labels)
            .set(i64::from(process.restarts));
        uptime
            .get_or_create(&labels)
            .set(process.uptime_ms.unwrap_or(0) as f64 / 1000.0);
        for state in STATUSES {
            let labels = StateLabels {
                app: process.app.clone(),
                instance: process.name.clone(),
                state: state.to_string(),
            };
            status
                .get_or_create(&labels)
                .set(i64::from(process.status == state));
        }
        if let (Some(mode), Some(port)) = (process.shared_port, process.port) {
            shared
                .get_or_create(&SharedLabels {
                    app: process.app.clone(),
                    instance: process.name.clone(),
                    mode: mode.to_string(),
                    port: port.to_string(),
                    private_port: process
                        .private_port
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                })
                .set(1);
        }
        if let Some(open) = process.connections {
            connections
                .get_or_create(&labels)
                .set(i64::try_from(open).unwrap_or(i64::MAX));
        }
        let current = process.health.to_string();
        for state in ["healthy", "unhealthy", "unknown"] {
            let labels = StateLabels {
                app: process.app.clone(),
                instance: process.name.clone(),
                state: state.to_string(),
            };
            health
                .get_or_create(&labels)
                .set(i64::from(state == current));
        }
    }
    registry.register(
        "instance_cpu_percent",
        "CPU use of the instance's process tree, percent of one core",
        cpu,
    );
    registry.register(
        "instance_memory_bytes",
        "Resident memory of the instance's process tree",
        memory,
    );
    registry.register(
        "instance_restarts",
        "Restarts of the instance since it was started",
        restarts,
    );
    registry.register(
        "instance_uptime_seconds",
        "Seconds since the instance's process started",
        uptime,
    );
    registry.register(
        "instance_status",
        "1 for the instance's current status",
        status,
    );
    registry.register(
        "instance_health",
        "1 for the instance's current health",
        health,
    );
    registry.register(
        "instance_shared_port",
        "1 for an instance of a shared-port cluster, with its mode, shared port and private port (proxy mode)",
        shared,
    );
    registry.register(
        "instance_proxy_connections",
        "Connections the proxy has open to the instance (proxy mode)",
        connections,
    );
    let host_memory = Gauge::<i64>::default();
    host_memory.set(system.memory_available as i64);
    registry.register(
        "host_memory_available_bytes",
        "Memory available on the host",
        host_memory,
    );
    let daemon_memory = Gauge::<i64>::default();
    daemon_memory.set(system.daemon_memory as i64);
    registry.register(
        "daemon_memory_bytes",
        "Resident memory of the pmdaemon daemon",
        daemon_memory,
    );
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = render(&state.supervisor.list(), &state.supervisor.system()).map_err(|err| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {err}"),
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}

/// `GET /api/system`.
pub async fn system(State(state): State<AppState>) -> Json<SystemInfo> {
    Json(state.supervisor.system())
}
