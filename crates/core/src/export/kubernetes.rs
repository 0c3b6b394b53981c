//! Kubernetes: a Deployment per app (`replicas` = instances, one process
//! per pod) and a Service per app with a port. The Service does what a
//! shared port does in pmdaemon: it spreads connections over the ready
//! replicas.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{
    check_command, command_line, dns_name, first_port, http_target, note_process_fields,
    relative_cwd, seconds, yaml, Notes,
};
use crate::config::{AppConfig, CheckType, HealthCheck};

/// The manifests for `apps` (from the file `file` in `base`), running
/// `image`: a YAML stream with the notes as its leading comment.
pub fn export(
    apps: &[AppConfig],
    file: &str,
    base: &Path,
    image: &str,
) -> Result<String, crate::Error> {
    let mut notes = Notes::default();
    let mut documents = Vec::new();
    for app in apps {
        let (deployment, service) = app_manifests(app, base, image, &mut notes);
        documents.push(deployment);
        documents.extend(service);
    }
    let mut out = notes.comment(&format!(
        "Kubernetes manifests exported by pmdaemon from {file} (image {image})."
    ));
    for document in &documents {
        out.push_str("---\n");
        out.push_str(&yaml(document)?);
    }
    Ok(out)
}

fn app_manifests(
    app: &AppConfig,
    base: &Path,
    image: &str,
    notes: &mut Notes,
) -> (Value, Option<Value>) {
    let name = dns_name(&app.name);
    if name != app.name {
        notes.add(
            &app.name,
            format!("named '{name}' (Kubernetes names are DNS labels)"),
        );
    }
    let labels = json!({ "app.kubernetes.io/name": name });
    let port = first_port(app, notes, "every replica (its own pod)");
    let mut container = Map::new();
    container.insert("name".into(), json!(name));
    container.insert("image".into(), json!(image));
    let command = command_line(app);
    container.insert("command".into(), json!(command[..1]));
    if command.len() > 1 {
        container.insert("args".into(), json!(command[1..]));
    }
    if let Some(dir) = relative_cwd(app, base) {
        notes.add(&app.name, format!("cwd '{dir}' (relative to the ecosystem file): set workingDir to where it is in the image"));
    }
    let mut env: Vec<Value> = app
        .env
        .iter()
        .filter(|(key, _)| key.as_str() != "PORT" || port.is_none())
        .map(|(key, value)| json!({ "name": key, "value": value }))
        .collect();
    if let Some(port) = port {
        env.push(json!({ "name": "PORT", "value": port.to_string() }));
    }
    env.push(json!({ "name": "PMDAEMON_APP_NAME", "value": app.name }));
    if !env.is_empty() {
        container.insert("env".into(), Value::Array(env));
    }
    if app.instances > 1 {
        notes.add(
            &app.name,
            format!(
                "PM2_INSTANCE_ID / {}: replicas have no index (a StatefulSet gives one)",
                app.instance_var
            ),
        );
    }
    if let Some(port) = port {
        container.insert(
            "ports".into(),
            json!([{ "name": "app", "containerPort": port, "protocol": "TCP" }]),
        );
    }
    if let Some(check) = app.health_check.as_ref().filter(|c| c.enabled) {
        if let Some(handler) = probe_handler(app, check, port, notes) {
            let period = seconds(check.interval);
            let timeout = seconds(check.timeout);
            let mut liveness = handler.clone();
            liveness.insert("periodSeconds".into(), json!(period));
            liveness.insert("timeoutSeconds".into(), json!(timeout));
            liveness.insert("failureThreshold".into(), json!(check.retries.max(1)));
            let mut readiness = handler.clone();
            readiness.insert("periodSeconds".into(), json!(period.min(10)));
            readiness.insert("timeoutSeconds".into(), json!(timeout));
            readiness.insert("failureThreshold".into(), json!(1));
            // pmdaemon counts no failure before the first pass until
            // listen_timeout is over: a startup probe.
            let mut startup = handler;
            let grace = seconds(app.listen_timeout.unwrap_or(30_000));
            startup.insert("periodSeconds".into(), json!(1));
            startup.insert("timeoutSeconds".into(), json!(timeout));
            startup.insert("failureThreshold".into(), json!(grace));
            container.insert("startupProbe".into(), Value::Object(startup));
            container.insert("livenessProbe".into(), Value::Object(liveness));
            container.insert("readinessProbe".into(), Value::Object(readiness));
        }
    }
    if let Some(bytes) = app.max_memory_restart {
        container.insert(
            "resources".into(),
            json!({ "limits": { "memory": quantity(bytes) } }),
        );
        notes.add(&app.name, "max_memory_restart: the memory limit OOM-kills the container instead of a graceful restart");
    }
    if app.stop_signal != "SIGTERM" {
        notes.add(
            &app.name,
            format!(
                "stop_signal {}: Kubernetes sends SIGTERM (set STOPSIGNAL in the image)",
                app.stop_signal
            ),
        );
    }
    if !app.autorestart || !app.stop_exit_codes.is_empty() {
        notes.add(&app.name, "autorestart false / stop_exit_codes: a Deployment always restarts its pods (a Job runs to completion)");
    }
    note_process_fields(app, notes);
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "replicas": app.instances,
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "terminationGracePeriodSeconds": seconds(app.kill_timeout),
                    "containers": [Value::Object(container)],
                },
            },
        },
    });
    let service = port.map(|port| {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "selector": labels,
                "ports": [{ "name": "app", "port": port, "targetPort": "app", "protocol": "TCP" }],
            },
        })
    });
    (deployment, service)
}

/// The probe's handler: httpGet, tcpSocket or exec.
fn probe_handler(
    app: &AppConfig,
    check: &HealthCheck,
    port: Option<u16>,
    notes: &mut Notes,
) -> Option<Map<String, Value>> {
    let mut handler = Map::new();
    match check.check_type {
        CheckType::Http => {
            let url = check.url.as_deref().unwrap_or_default();
            let Some(target) = http_target(url) else {
                notes.add(
                    &app.name,
                    format!("health_check url '{url}' is not http(s)"),
                );
                return None;
            };
            if target.other_host {
                notes.add(
                    &app.name,
                    format!(
                        "health_check url '{url}' checks another host; the probe checks the pod"
                    ),
                );
            }
            let Some(probe_port) = target.port.or(port) else {
                notes.add(
                    &app.name,
                    "health_check: the url has no port and the app none",
                );
                return None;
            };
            handler.insert(
                "httpGet".into(),
                json!({ "path": target.path, "port": probe_port, "scheme": target.scheme }),
            );
        }
        CheckType::Tcp => {
            let Some(port) = port else {
                notes.add(&app.name, "health_check tcp: the app has no port");
                return None;
            };
            handler.insert("tcpSocket".into(), json!({ "port": port }));
        }
        CheckType::Script => {
            let command = check_command(check, port)?;
            handler.insert("exec".into(), json!({ "command": ["sh", "-c", command] }));
        }
    }
    Some(handler)
}

/// Bytes as a Kubernetes quantity (`256Mi` when it is a whole number).
fn quantity(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "Gi"), (1 << 20, "Mi"), (1 << 10, "Ki")];
    UNITS
        .iter()
        .find(|(size, _)| bytes % size == 0 && bytes >= *size)
        .map_or_else(
            || bytes.to_string(),
            |(size, unit)| format!("{}{unit}", bytes / size),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PortSpec;

    fn app() -> AppConfig {
        AppConfig {
            name: "web_app".into(),
            script: "server.js".into(),
            args: vec!["--fast".into()],
            instances: 3,
            port: Some(PortSpec::Range {
                start: 5000,
                end: 5002,
            }),
            kill_timeout: 5000,
            max_memory_restart: Some(512 << 20),
            health_check: Some(HealthCheck {
                url: Some("http://localhost:{PORT}/health".into()),
                ..HealthCheck::default()
            }),
            cron_restart: Some("0 3 * * *".into()),
            ..AppConfig::default()
        }
    }

    #[test]
    fn an_app_becomes_a_deployment_and_a_service() {
        let out = export(&[app()], "eco.json", Path::new("/srv"), "reg/app:1").unwrap();
        for expected in [
            "kind: Deployment",
            "replicas: 3",
            "image: reg/app:1",
            "command:\n",
            "- node",
            "containerPort: 5000",
            "path: /health",
            "memory: 512Mi",
            "terminationGracePeriodSeconds: 5",
            "kind: Service",
            "name: web-app",
            "#   - app 'web_app': cron_restart '0 3 * * *': scheduled restarts",
            "#   - app 'web_app': port 5000-5002 gives each instance its own port",
        ] {
            assert!(out.contains(expected), "{expected} missing in\n{out}");
        }
    }

    #[test]
    fn quantities_use_binary_units() {
        assert_eq!(quantity(256 << 20), "256Mi");
        assert_eq!(quantity(1 << 30), "1Gi");
        assert_eq!(quantity(1000), "1000");
    }
}
