//! Docker Compose: a service per app, `deploy.replicas` = instances, a
//! healthcheck, a restart policy, the stop signal and grace period.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{
    check_command, command_line, dns_name, first_port, note_process_fields, relative_cwd, seconds,
    yaml, Notes,
};
use crate::config::AppConfig;

/// The Compose file for `apps` (from `file` in `base`), running `image`.
pub fn export(
    apps: &[AppConfig],
    file: &str,
    base: &Path,
    image: &str,
) -> Result<String, crate::Error> {
    let mut notes = Notes::default();
    let mut services = Map::new();
    for app in apps {
        let name = dns_name(&app.name);
        if name != app.name {
            notes.add(&app.name, format!("service named '{name}'"));
        }
        services.insert(name, service(app, base, image, &mut notes));
    }
    let mut out = notes.comment(&format!(
        "Compose file exported by pmdaemon from {file} (image {image})."
    ));
    out.push_str(&yaml(&json!({ "services": services }))?);
    Ok(out)
}

fn service(app: &AppConfig, base: &Path, image: &str, notes: &mut Notes) -> Value {
    let mut service = Map::new();
    service.insert("image".into(), json!(image));
    service.insert("command".into(), json!(command_line(app)));
    if let Some(dir) = relative_cwd(app, base) {
        notes.add(&app.name, format!("cwd '{dir}' (relative to the ecosystem file): set working_dir to where it is in the image"));
    }
    let port = first_port(app, notes, "every replica");
    let mut env: Map<String, Value> = app
        .env
        .iter()
        .map(|(key, value)| (key.clone(), json!(value)))
        .collect();
    if let Some(port) = port {
        env.insert("PORT".into(), json!(port.to_string()));
    }
    env.insert("PMDAEMON_APP_NAME".into(), json!(app.name));
    service.insert("environment".into(), Value::Object(env));
    if let Some(port) = port {
        // Replicas cannot all publish one host port: each gets its own.
        let published = if app.instances > 1 {
            notes.add(&app.name, format!("port {port}: each replica publishes it on a host port Docker picks (put a proxy in front to share one)"));
            format!("{port}")
        } else {
            format!("{port}:{port}")
        };
        service.insert("ports".into(), json!([published]));
    }
    if app.instances > 1 {
        notes.add(
            &app.name,
            format!(
                "PM2_INSTANCE_ID / {}: replicas have no index",
                app.instance_var
            ),
        );
    }
    let mut deploy = Map::new();
    deploy.insert("replicas".into(), json!(app.instances));
    if let Some(bytes) = app.max_memory_restart {
        deploy.insert(
            "resources".into(),
            json!({ "limits": { "memory": format!("{}M", bytes.div_ceil(1 << 20)) } }),
        );
        notes.add(&app.name, "max_memory_restart: the memory limit OOM-kills the container instead of a graceful restart");
    }
    service.insert("deploy".into(), Value::Object(deploy));
    if let Some(check) = app.health_check.as_ref().filter(|c| c.enabled) {
        match check_command(check, port) {
            Some(command) => {
                service.insert(
                    "healthcheck".into(),
                    json!({
                        "test": ["CMD-SHELL", command],
                        "interval": format!("{}s", seconds(check.interval)),
                        "timeout": format!("{}s", seconds(check.timeout)),
                        "retries": check.retries.max(1),
                        "start_period": format!("{}s", seconds(app.listen_timeout.unwrap_or(30_000))),
                    }),
                );
                notes.add(&app.name, "healthcheck: Docker marks an unhealthy container but does not restart it (pmdaemon restarts the instance)");
            }
            None => notes.add(
                &app.name,
                "health_check: incomplete (no url, script or port)",
            ),
        }
    }
    let restart = if !app.autorestart {
        "no"
    } else if !app.stop_exit_codes.is_empty() {
        notes.add(
            &app.name,
            format!(
                "stop_exit_codes {:?}: only exit status 0 ends the restarts",
                app.stop_exit_codes
            ),
        );
        "on-failure"
    } else {
        "unless-stopped"
    };
    service.insert("restart".into(), json!(restart));
    service.insert("stop_signal".into(), json!(app.stop_signal));
    service.insert(
        "stop_grace_period".into(),
        json!(format!("{}ms", app.kill_timeout)),
    );
    note_process_fields(app, notes);
    Value::Object(service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HealthCheck;
    use crate::ports::PortSpec;

    #[test]
    fn an_app_becomes_a_service_with_replicas() {
        let app = AppConfig {
            name: "api".into(),
            script: "api.py".into(),
            instances: 2,
            port: Some(PortSpec::Single(8000)),
            health_check: Some(HealthCheck {
                url: Some("http://127.0.0.1:{PORT}/health".into()),
                ..HealthCheck::default()
            }),
            stop_signal: "SIGINT".into(),
            ..AppConfig::default()
        };
        let out = export(&[app], "eco.json", Path::new("/srv"), "app:latest").unwrap();
        for expected in [
            "services:",
            "replicas: 2",
            "- python3",
            "- api.py",
            "http://127.0.0.1:8000/health",
            "restart: unless-stopped",
            "stop_signal: SIGINT",
            "- \"8000\"",
        ] {
            assert!(out.contains(expected), "{expected} missing in\n{out}");
        }
    }
}
