//! `pmdaemon jlist` and `prettylist`: the process list in the shape of
//! `pm2 jlist`, so that scripts written for PM2 (`jq '.[] | select(.name ==
//! "web") | .pm2_env.status'`) keep working. One object per instance, named
//! by its app as PM2 names them, with the fields PM2 scripts read:
//! `name`, `pm_id`, `pid`, `monit.{memory,cpu}` and `pm2_env.{name, pm_id,
//! namespace, status, pm_uptime, restart_time, unstable_restarts,
//! exec_mode, instances, NODE_APP_INSTANCE, pm_exec_path, pm_cwd,
//! pm_out_log_path, pm_err_log_path, exec_interpreter, args, node_args,
//! autorestart, watch, kill_timeout, max_memory_restart, exit_code, env,
//! versioning, axm_monitor}`, plus pmdaemon's own under `pm2_env.pmdaemon`.
//! `pmdaemon list --json` is pmdaemon's own, richer shape.

use anyhow::Result;
use pmdaemon_core::api::endpoints::Info;
use pmdaemon_core::api::{ExitReason, ProcessDetail, Status};
use pmdaemon_core::config::ExecMode;
use pmdaemon_core::home::Home;
use serde_json::{json, Value};

use crate::client::Client;

/// Prints every instance in PM2's shape, on one line or indented.
pub async fn run(home: Home, pretty: bool) -> Result<()> {
    let client = Client::connect(home).await?;
    let details: Vec<ProcessDetail> = client.call::<Info>("all", &()).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let list: Vec<Value> = details.iter().map(|d| pm2_shape(d, now)).collect();
    let text = if pretty {
        serde_json::to_string_pretty(&list)?
    } else {
        serde_json::to_string(&list)?
    };
    println!("{text}");
    Ok(())
}

/// PM2's name for a status.
fn pm2_status(status: Status) -> &'static str {
    match status {
        Status::Launching => "launching",
        Status::Online => "online",
        Status::Stopping => "stopping",
        Status::Stopped => "stopped",
        Status::Errored => "errored",
        Status::WaitingRestart => "waiting restart",
    }
}

/// One instance as `pm2 jlist` shows a process; `now` in ms since the epoch.
fn pm2_shape(detail: &ProcessDetail, now: u64) -> Value {
    let info = &detail.info;
    let config = &detail.config;
    let invocation = pmdaemon_core::command::invocation(
        &config.script,
        &config.args,
        config.interpreter.as_deref(),
    );
    let exec_path = match &invocation.script_file {
        Some(script) => detail.cwd.join(script).display().to_string(),
        None => detail.command.first().cloned().unwrap_or_default(),
    };
    let interpreter = match invocation.script_file {
        Some(_) => invocation.program,
        None => "none".to_string(),
    };
    let exec_mode = if config.exec_mode == ExecMode::Cluster || info.shared_port.is_some() {
        "cluster_mode"
    } else {
        "fork_mode"
    };
    let exit_code = match info.last_exit {
        Some(ExitReason::Code(code)) => json!(code),
        Some(ExitReason::Signal(_)) => json!(1),
        None => json!(0),
    };
    let started = info.uptime_ms.map(|up| now.saturating_sub(up));
    json!({
        "pid": info.pid.unwrap_or(0),
        "name": info.app,
        "pm_id": info.id,
        "monit": {
            "memory": info.memory_bytes.unwrap_or(0),
            "cpu": info.cpu_percent.unwrap_or(0.0),
        },
        "pm2_env": {
            "name": info.app,
            "pm_id": info.id,
            "namespace": config.namespace.as_deref().unwrap_or("default"),
            "status": pm2_status(info.status),
            "pm_uptime": started.unwrap_or(0),
            "restart_time": info.restarts,
            "unstable_restarts": info.unstable_restarts,
            "exec_mode": exec_mode,
            "instances": config.instances,
            "NODE_APP_INSTANCE": info.instance,
            "pm_exec_path": exec_path,
            "pm_cwd": detail.cwd,
            "pm_out_log_path": detail.out_log,
            "pm_err_log_path": detail.err_log,
            "exec_interpreter": interpreter,
            "args": config.args,
            "node_args": config.interpreter_args,
            "autorestart": config.autorestart,
            "watch": !config.watch.is_empty(),
            "kill_timeout": config.kill_timeout,
            "max_memory_restart": config.max_memory_restart,
            "exit_code": exit_code,
            "env": detail.environment,
            "versioning": null,
            "axm_monitor": {},
            "pmdaemon": {
                "instance_name": info.name,
                "port": info.port,
                "ready": info.ready,
                "health": info.health,
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_reads_as_a_pm2_process() {
        let detail: ProcessDetail = serde_json::from_value(json!({
            "id": 7, "name": "web-1", "app": "web", "instance": 1, "status": "waiting-restart",
            "pid": null, "port": 3001, "cpu_percent": 1.5, "memory_bytes": 1024,
            "uptime_ms": 500, "restarts": 3, "unstable_restarts": 1,
            "last_exit": {"code": 2},
            "config": {"name": "web", "script": "server.js", "instances": 2},
            "command": ["/usr/bin/node", "server.js"], "cwd": "/srv/web",
            "out_log": "/h/logs/web-1-out.log", "err_log": "/h/logs/web-1-err.log",
            "history": [], "environment": {"PORT": "3001"}
        }))
        .unwrap();
        let shape = pm2_shape(&detail, 10_000);
        assert_eq!(shape["name"], "web");
        assert_eq!(shape["pm_id"], 7);
        assert_eq!(shape["pid"], 0);
        assert_eq!(shape["monit"]["memory"], 1024);
        let env = &shape["pm2_env"];
        assert_eq!(env["status"], "waiting restart");
        assert_eq!(env["pm_uptime"], 9_500);
        assert_eq!(env["restart_time"], 3);
        assert_eq!(env["unstable_restarts"], 1);
        assert_eq!(env["exec_mode"], "fork_mode");
        assert_eq!(env["pm_exec_path"], "/srv/web/server.js");
        assert_eq!(env["exec_interpreter"], "node");
        assert_eq!(env["exit_code"], 2);
        assert_eq!(env["NODE_APP_INSTANCE"], 1);
        assert_eq!(env["env"]["PORT"], "3001");
    }
}
