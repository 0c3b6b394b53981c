//! systemd: one template unit per app, `<app>@.service`, where the instance
//! name `%i` is the instance index (`systemctl enable --now web@0 web@1`).
//! A port range gives instance i the port `start + i`, computed by a shell
//! at start, as pmdaemon does.

use super::{check_command, command_line, first_port, note_process_fields, Notes};
use crate::config::AppConfig;
use crate::ports::PortSpec;

/// One unit file: its name and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// `<app>@.service`.
    pub file_name: String,
    /// The unit, with what it cannot express as a leading comment.
    pub text: String,
}

/// The template units of `apps` (from `file`).
pub fn export(apps: &[AppConfig], file: &str) -> Vec<Unit> {
    apps.iter().map(|app| unit(app, file)).collect()
}

fn unit(app: &AppConfig, file: &str) -> Unit {
    let mut notes = Notes::default();
    let mut service = Vec::new();
    let notify = app.wait_ready;
    service.push(format!("Type={}", if notify { "notify" } else { "exec" }));
    if notify {
        service.push("NotifyAccess=all".to_string());
    }
    if let Some(cwd) = &app.cwd {
        let cwd = normalized(cwd);
        service.push(format!(
            "WorkingDirectory={}",
            quote(&cwd.display().to_string())
        ));
    }
    for (key, value) in &app.env {
        service.push(format!("Environment={}", quote(&format!("{key}={value}"))));
    }
    let name = &app.name;
    service.push(format!(
        "Environment=PM2_INSTANCE_ID=%i {}=%i PMDAEMON_APP_NAME={} PMDAEMON_INSTANCE_NAME={}-%i",
        app.instance_var,
        quote(name),
        quote(name)
    ));
    let mut command = command_line(app);
    // A relative program is the app's, from its directory.
    if command[0].contains('/') && !command[0].starts_with('/') {
        if let Some(cwd) = &app.cwd {
            command[0] = cwd.join(&command[0]).display().to_string();
        }
    }
    let words: Vec<String> = command.iter().map(|w| quote(w)).collect();
    match app.port {
        Some(PortSpec::Auto { start, end }) if app.instances > 1 => {
            notes.add(name, format!("port auto:{start}-{end}: instance i gets {start} + i, whether it is free or not"));
            service.push(format!(
                "ExecStart=/bin/sh -c 'PORT=$$(({start} + %i)) exec \"$$0\" \"$$@\"' {}",
                words.join(" ")
            ));
        }
        Some(PortSpec::Range { start, .. }) => service.push(format!(
            "ExecStart=/bin/sh -c 'PORT=$$(({start} + %i)) exec \"$$0\" \"$$@\"' {}",
            words.join(" ")
        )),
        _ => {
            if let Some(port) = first_port(app, &mut notes, "every instance") {
                service.push(format!("Environment=PORT={port}"));
                if app.instances > 1 && matches!(app.port, Some(PortSpec::Single(_))) {
                    notes.add(name, format!("port {port} shared by all instances: pmdaemon holds it for them (use a .socket unit, or a balancer)"));
                }
            }
            service.push(format!("ExecStart={}", words.join(" ")));
        }
    }
    service.push(format!("KillSignal={}", app.stop_signal));
    service.push(format!("TimeoutStopSec={}ms", app.kill_timeout));
    service.push(format!(
        "Restart={}",
        if app.autorestart { "always" } else { "no" }
    ));
    if app.restart_delay > 0 {
        service.push(format!("RestartSec={}ms", app.restart_delay));
    }
    if !app.stop_exit_codes.is_empty() {
        let codes: Vec<String> = app.stop_exit_codes.iter().map(i32::to_string).collect();
        service.push(format!("RestartPreventExitStatus={}", codes.join(" ")));
    }
    if let Some(bytes) = app.max_memory_restart {
        service.push(format!("MemoryMax={bytes}"));
        notes.add(name, "max_memory_restart: MemoryMax makes the kernel kill the instance at the limit (then Restart= brings it back) instead of a graceful restart");
    }
    if let Some(path) = &app.out_file {
        service.push(format!("StandardOutput=append:{}", path.display()));
    }
    if let Some(path) = &app.error_file {
        service.push(format!("StandardError=append:{}", path.display()));
    }
    if let Some(check) = app.health_check.as_ref().filter(|c| c.enabled) {
        let command = check_command(check, None).unwrap_or_default();
        notes.add(name, format!("health_check ({command}): systemd has no health checks; a timer running it with `systemctl restart` would do"));
    }
    let mut process_notes = Notes::default();
    note_process_fields(app, &mut process_notes);
    // Logs and delays are expressed above; the rest is noted.
    notes.0.extend(
        process_notes
            .0
            .into_iter()
            .filter(|note| !note.contains("out_file") && !note.contains("restart_delay")),
    );
    let mut text = notes.comment(&format!(
        "systemd template unit exported by pmdaemon from {file}: %i is the instance index."
    ));
    let instances: Vec<String> = (0..app.instances).map(|i| format!("{name}@{i}")).collect();
    text.push_str(&format!(
        "# Start the {} instance(s): systemctl enable --now {}\n",
        app.instances,
        instances.join(" ")
    ));
    text.push_str(&format!(
        "[Unit]\nDescription={name} instance %i (pmdaemon export)\nAfter=network.target\n\n[Service]\n{}\n\n[Install]\nWantedBy=multi-user.target\n",
        service.join("\n")
    ));
    Unit {
        file_name: format!("{name}@.service"),
        text,
    }
}

/// `path` without `.` and `..` components, which systemd refuses.
fn normalized(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A word as systemd reads it, `%` and `$` escaped; in double quotes when
/// it holds spaces or quotes.
pub fn quote(word: &str) -> String {
    let word = word.replace('%', "%%").replace('$', "$$");
    if word.is_empty() || word.contains([' ', '"', '\'', '\\', ';', '\t']) {
        format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_range_gives_each_instance_its_port() {
        let app = AppConfig {
            name: "api".into(),
            script: "api.py".into(),
            args: vec!["--name".into(), "my api".into()],
            instances: 2,
            port: Some(PortSpec::Range {
                start: 3000,
                end: 3001,
            }),
            stop_exit_codes: vec![0, 3],
            cwd: Some("/srv/x/../app/.".into()),
            ..AppConfig::default()
        };
        let unit = &export(&[app], "eco.json")[0];
        assert_eq!(unit.file_name, "api@.service");
        assert!(unit.text.contains("ExecStart=/bin/sh -c 'PORT=$$((3000 + %i)) exec \"$$0\" \"$$@\"' python3 api.py --name \"my api\"\n"), "{}", unit.text);
        assert!(
            unit.text.contains("RestartPreventExitStatus=0 3"),
            "{}",
            unit.text
        );
        assert!(unit.text.contains("systemctl enable --now api@0 api@1"));
        assert!(
            unit.text.contains("WorkingDirectory=/srv/app\n"),
            "{}",
            unit.text
        );
        assert_eq!(quote("50%"), "50%%");
    }
}
