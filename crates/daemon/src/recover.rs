//! Cleaning up after a daemon that died without stopping its apps.
//!
//! A new daemon has no process yet, so every process of its home is a
//! leftover, whatever the moment the old daemon died: also one spawned a
//! moment before the table on disk could say so, or one that left its
//! process group (setsid). Two ways find them:
//! - the marks every managed process carries in its environment, inherited
//!   by whatever it forks: `PMDAEMON_HOME` = this home and an
//!   `PMDAEMON_INSTANCE_NAME`;
//! - the table's leaders, for a process that cleared its environment: the
//!   recorded pid with the recorded start time (a reused pid is never
//!   mistaken for it), and the members of its group that carry the marks.
//!
//! Leftovers get their app's stop signal, then SIGKILL after its
//! `kill_timeout`, so that the new daemon can start the apps again without
//! duplicates, orphans or port conflicts.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pmdaemon_core::config::AppConfig;
use tokio::time::{sleep, Instant};

use crate::paths::Home;
use crate::procinfo;
use crate::store::State;

/// Kills whatever the previous daemon left running; returns how many
/// processes were found.
pub async fn kill_leftovers(home: &Home, state: &State) -> usize {
    let processes = procinfo::all();
    let mut victims: Vec<(u32, Signal, Duration)> = Vec::new();
    // During a reload an instance has two processes: the recorded one and
    // the one it replaces.
    let leaders = state.instances.iter().flat_map(|record| {
        [
            record.pid.map(|pid| (pid, record.pid_start_time)),
            record
                .previous_pid
                .map(|pid| (pid, record.previous_pid_start_time)),
        ]
        .into_iter()
        .flatten()
        .map(move |(pid, start)| (record, pid, start))
    });
    for (record, leader, leader_start) in leaders {
        let config = state
            .apps
            .iter()
            .find(|a| a.config.name == record.app)
            .map(|a| &a.config);
        let signal = config.map_or(Signal::SIGTERM, crate::spawn::stop_signal);
        let grace = Duration::from_millis(
            config.map_or(AppConfig::default().kill_timeout, |c| c.kill_timeout),
        );
        let marks = [
            format!("PMDAEMON_HOME={}", home.root().display()),
            format!("PMDAEMON_INSTANCE_NAME={}", record.name),
        ];
        let me = std::process::id();
        for process in processes
            .iter()
            .filter(|p| p.pgrp == leader && !p.zombie && p.pid != me)
        {
            let is_leader = process.pid == leader && Some(process.start_time) == leader_start;
            if is_leader || procinfo::environ_has(process.pid, &marks) {
                tracing::warn!(
                    "pid {} of {} was left running by the previous daemon; stopping it",
                    process.pid,
                    record.name
                );
                victims.push((process.pid, signal, grace));
            }
        }
    }
    // Everything else that carries this home's marks.
    let home_mark = format!("PMDAEMON_HOME={}", home.root().display());
    let me = std::process::id();
    for process in processes.iter().filter(|p| !p.zombie && p.pid != me) {
        if victims.iter().any(|(pid, _, _)| *pid == process.pid) {
            continue;
        }
        // Read once: the home's mark, then the instance's name.
        let Some(environ) = procinfo::environ(process.pid)
            .filter(|environ| environ.has_all(std::slice::from_ref(&home_mark)))
        else {
            continue;
        };
        let Some(instance) = environ.var("PMDAEMON_INSTANCE_NAME") else {
            continue;
        };
        let config = state
            .instances
            .iter()
            .find(|i| i.name == instance)
            .and_then(|i| state.apps.iter().find(|a| a.config.name == i.app))
            .map(|a| &a.config);
        tracing::warn!(
            "pid {} of {instance} was left running by the previous daemon (found by its marks); stopping it",
            process.pid
        );
        victims.push((
            process.pid,
            config.map_or(Signal::SIGTERM, crate::spawn::stop_signal),
            Duration::from_millis(
                config.map_or(AppConfig::default().kill_timeout, |c| c.kill_timeout),
            ),
        ));
    }
    let found = victims.len();
    for (pid, signal, _) in &victims {
        let _ = kill(Pid::from_raw(*pid as i32), *signal);
    }
    // These are not our children, so no exit event reaches us: checking on a
    // short tick is the only way, and it happens once per daemon start.
    let started = Instant::now();
    while !victims.is_empty() {
        victims.retain(|(pid, _, grace)| {
            let alive = procinfo::stat(*pid).is_some_and(|p| !p.zombie);
            if alive && started.elapsed() >= *grace {
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
            }
            alive
        });
        if started.elapsed() > Duration::from_secs(30) {
            // A kill_timeout longer than this wait: no more grace.
            for (pid, _, _) in &victims {
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
            }
            if started.elapsed() > Duration::from_secs(32) {
                tracing::error!("{} leftover processes survived SIGKILL", victims.len());
                break;
            }
        }
        sleep(Duration::from_millis(10)).await;
    }
    found
}
