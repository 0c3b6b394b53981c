//! The sampler: one scan of `/proc` gives every instance the CPU and memory
//! of its whole process tree (its descendants, and whatever is left in its
//! process group), and the host's CPU, memory and load. It also enforces
//! `max_memory_restart`.
//!
//! Its rate follows what is asked of it. Every second
//! (`PMDAEMON_SAMPLE_INTERVAL_MS`) while someone looks (`list`, `describe`,
//! `monit`, `/metrics`, `/api/system`, the dashboard: a look within the last
//! [`WATCH_WINDOW`]), while a `/ws` client is connected, or while an app has
//! a memory limit; otherwise once a minute ([`IDLE_INTERVAL`]). A look that
//! finds the last sample older than two intervals samples at once, so
//! `list` never shows stale figures. CPU is the ticks used since the
//! previous reading of the same process; a process read for the first time
//! (just started, or first seen after an idle spell) shows its average
//! since it started, as `ps` does, so the first figure needs no wait.
//!
//! (The kernel's `/proc/PID/task/*/children` lists would let a sample read
//! only the instances' trees; they need CONFIG_PROC_CHILDREN, which the
//! machines this was measured on lack, so a sample reads every `/proc/PID/
//! stat` and an idle daemon simply samples rarely.)

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use pmdaemon_core::api::SystemInfo;
use pmdaemon_core::units::format_bytes;

use crate::procinfo::{self, ProcStat};

/// What the sampler reads from and reports to. The supervisor implements
/// it; this module does not know the supervisor.
pub(crate) trait Sampled: Send + Sync + 'static {
    /// The running instances to sample: id, pid, memory limit.
    fn sampling_targets(&self) -> Vec<Target>;
    /// What a sample measured.
    fn store_samples(&self, samples: &[(u32, Sample)], system: SystemInfo);
    /// Restarts instance `id` because of `reason` (a memory limit), in the
    /// background.
    fn request_restart(self: Arc<Self>, id: u32, reason: String);
    /// The sampler's state and rate.
    fn sampler(&self) -> &Sampler;
    /// Whether a live client (`/ws`) wants samples as they come.
    fn streaming(&self) -> bool;
    /// Whether an app with a memory limit is meant to run (whatever its
    /// instances are doing this very moment: restarting, launching).
    fn memory_limited(&self) -> bool;
}

/// Default sampling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The interval while nobody looks and no app has a memory limit.
pub const IDLE_INTERVAL: Duration = Duration::from_secs(60);

/// How long after a look the sampler keeps its full rate.
pub const WATCH_WINDOW: Duration = Duration::from_secs(5);

/// What one tick measured for one instance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Percent of one core.
    pub cpu_percent: f32,
    /// Resident bytes of the tree.
    pub memory_bytes: u64,
}

/// An instance to measure: id, leader pid, and its memory limit.
pub(crate) type Target = (u32, u32, Option<u64>);

#[derive(Debug, Default)]
struct Previous {
    /// CPU ticks per (pid, start time) at the last tick.
    ticks: HashMap<(u32, u64), u64>,
    /// Host busy and total jiffies at the last tick.
    host: Option<(u64, u64)>,
    at: Option<Instant>,
}

/// The sampler's memory between samples, and who looked when.
#[derive(Debug)]
pub struct Sampler {
    /// None: sampling is off.
    interval: Option<Duration>,
    previous: Mutex<Previous>,
    looked_at: Mutex<Option<Instant>>,
    wake: tokio::sync::Notify,
}

impl Sampler {
    /// A sampler at `interval` (None: off).
    pub fn new(interval: Option<Duration>) -> Self {
        Self {
            interval,
            previous: Mutex::new(Previous::default()),
            looked_at: Mutex::new(None),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// Someone looks at the figures: the sampler runs at full rate for a
    /// while. Returns whether the last sample is too old to show (more than
    /// two intervals), in which case the caller samples now.
    pub fn looked(&self) -> bool {
        let Some(interval) = self.interval else {
            return false;
        };
        let was_watched = self
            .looked_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(Instant::now())
            .is_some_and(|at| at.elapsed() < WATCH_WINDOW);
        if !was_watched {
            self.wake.notify_one();
        }
        let at = self.previous.lock().unwrap_or_else(|e| e.into_inner()).at;
        at.is_none_or(|at| at.elapsed() > interval * 2)
    }

    /// Whether sampling is on.
    pub fn enabled(&self) -> bool {
        self.interval.is_some()
    }

    /// The full sampling rate (none: sampling is off).
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Asks the sampler to reconsider its rate now (an app with a memory
    /// limit was added).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    fn watched(&self) -> bool {
        self.looked_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < WATCH_WINDOW)
    }

    /// Measures `targets`; returns the samples, the host's CPU use and the
    /// instances over their memory limit (id, pid, reason). Two samples
    /// never run at once.
    pub(crate) fn measure(&self, targets: Vec<Target>) -> Measured {
        let ticks_per_second = procinfo::ticks_per_second() as f64;
        let page = procinfo::page_size();
        let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
        let processes = procinfo::all();
        let now = Instant::now();
        let uptime = uptime_seconds();
        let elapsed = previous.at.map(|at| now.duration_since(at).as_secs_f64());
        let mut ticks = HashMap::new();
        let mut measured = Measured::default();
        let index = Index::of(&processes);
        for (id, pid, limit) in targets {
            let tree = tree(pid, &processes, &index);
            if tree.iter().all(|p| p.rss_pages == 0) {
                // Not in this scan, or caught inside execve with no pages
                // mapped yet: keep the last sample rather than report 0.
                continue;
            }
            let mut cpu_seconds = 0.0;
            let mut rss_pages = 0;
            for process in &tree {
                let key = (process.pid, process.start_time);
                let used = match (previous.ticks.get(&key), elapsed) {
                    (Some(before), Some(seconds)) if seconds > 0.0 => {
                        process.cpu_ticks.saturating_sub(*before) as f64 / seconds
                    }
                    // First reading: its average since it started.
                    _ => {
                        let started = process.start_time as f64 / ticks_per_second;
                        match uptime.map(|u| u - started) {
                            Some(age) if age > 0.0 => process.cpu_ticks as f64 / age,
                            _ => 0.0,
                        }
                    }
                };
                cpu_seconds += used / ticks_per_second;
                ticks.insert(key, process.cpu_ticks);
                rss_pages += process.rss_pages;
            }
            let memory_bytes = rss_pages * page;
            measured.samples.push((
                id,
                Sample {
                    cpu_percent: (cpu_seconds * 100.0) as f32,
                    memory_bytes,
                },
            ));
            if let Some(limit) = limit.filter(|l| memory_bytes > *l) {
                let reason = format!(
                    "memory {} exceeded max_memory_restart {}",
                    format_bytes(memory_bytes),
                    format_bytes(limit)
                );
                measured.over_limit.push((id, pid, reason));
            }
        }
        measured.alive = processes.iter().map(|p| p.pid).collect();
        let host = host_cpu();
        measured.host_percent = match (host, previous.host) {
            (Some((busy, total)), Some((busy_before, total_before))) if total > total_before => {
                Some(
                    (busy.saturating_sub(busy_before) as f64 / (total - total_before) as f64
                        * 100.0) as f32,
                )
            }
            _ => None,
        };
        *previous = Previous {
            ticks,
            host,
            at: Some(now),
        };
        measured
    }

    /// A first figure for instances never sampled (just started): their
    /// leader process alone, read directly (CPU: its average since it
    /// started), so that a `list` right after a start costs the new
    /// instances, not a scan of every process. The next full sample adds
    /// their descendants.
    pub(crate) fn measure_leaders(&self, targets: &[Target]) -> Vec<(u32, Sample)> {
        let ticks_per_second = procinfo::ticks_per_second() as f64;
        let page = procinfo::page_size();
        let uptime = uptime_seconds();
        targets
            .iter()
            .filter_map(|(id, pid, _)| {
                let process = procinfo::stat(*pid).filter(|p| p.rss_pages > 0)?;
                let age = uptime? - process.start_time as f64 / ticks_per_second;
                let cpu = if age > 0.0 {
                    process.cpu_ticks as f64 / ticks_per_second / age * 100.0
                } else {
                    0.0
                };
                Some((
                    *id,
                    Sample {
                        cpu_percent: cpu as f32,
                        memory_bytes: process.rss_pages * page,
                    },
                ))
            })
            .collect()
    }

    fn sampled_within(&self, window: Duration) -> bool {
        self.previous
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .at
            .is_some_and(|at| at.elapsed() < window)
    }
}

/// What one sample found.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    pub samples: Vec<(u32, Sample)>,
    pub host_percent: Option<f32>,
    /// Instances over their memory limit: id, pid, why.
    pub over_limit: Vec<(u32, u32, String)>,
    /// Every pid the scan saw.
    alive: HashSet<u32>,
}

/// The sampling interval from the environment (0 turns sampling off).
pub fn interval_from_env() -> Option<Duration> {
    match std::env::var("PMDAEMON_SAMPLE_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms)),
        None => Some(DEFAULT_INTERVAL),
    }
}

/// Samples until the supervisor is gone.
pub(crate) async fn run<S: Sampled>(supervisor: Weak<S>, interval: Duration) {
    // Instances already being restarted for memory, by pid.
    let mut restarting: HashSet<u32> = HashSet::new();
    // When this loop last sampled, and when it samples next.
    let mut last: Option<tokio::time::Instant> = None;
    let mut next = tokio::time::Instant::now();
    loop {
        {
            let Some(supervisor) = supervisor.upgrade() else {
                return;
            };
            let sampler = supervisor.sampler();
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = sampler.wake.notified() => {}
            }
        }
        let Some(supervisor) = supervisor.upgrade() else {
            return;
        };
        let sampler = supervisor.sampler();
        // Not only the Online targets: an instance caught restarting must
        // not drop the sampler to its idle rate while its limit applies.
        let full_rate = supervisor.memory_limited() || sampler.watched() || supervisor.streaming();
        let wait = if full_rate {
            interval
        } else {
            IDLE_INTERVAL.max(interval)
        };
        // A wake re-plans the next sample at the rate that applies now; it
        // samples at once only if that sample is due (a command that
        // changes nothing about the rate costs no scan of /proc).
        let now = tokio::time::Instant::now();
        next = last.map_or(now, |last| last + wait);
        if next > now {
            continue;
        }
        last = Some(now);
        next = now + wait;
        // A look may have just sampled: too short a window is noise.
        if sampler.sampled_within(interval / 2) {
            continue;
        }
        let measured = sampler.measure(supervisor.sampling_targets());
        for (id, pid, reason) in &measured.over_limit {
            if restarting.insert(*pid) {
                Arc::clone(&supervisor).request_restart(*id, reason.clone());
            }
        }
        restarting.retain(|pid| measured.alive.contains(pid));
        supervisor.store_samples(&measured.samples, system_info(measured.host_percent));
    }
}

/// Seconds since boot, from /proc/uptime.
fn uptime_seconds() -> Option<f64> {
    std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Positions in one scan by pid, by parent and by process group, so that
/// each instance's tree costs its own size, not the whole scan's.
struct Index {
    by_pid: HashMap<u32, usize>,
    children: HashMap<u32, Vec<usize>>,
    groups: HashMap<u32, Vec<usize>>,
}

impl Index {
    fn of(processes: &[ProcStat]) -> Self {
        let mut index = Index {
            by_pid: HashMap::new(),
            children: HashMap::new(),
            groups: HashMap::new(),
        };
        for (position, process) in processes.iter().enumerate() {
            index.by_pid.insert(process.pid, position);
            index
                .children
                .entry(process.ppid)
                .or_default()
                .push(position);
            index.groups.entry(process.pgrp).or_default().push(position);
        }
        index
    }
}

/// The instance led by `pid`: its descendants, and its process group.
fn tree<'a>(pid: u32, processes: &'a [ProcStat], index: &Index) -> Vec<&'a ProcStat> {
    let mut seen: HashSet<u32> = HashSet::new();
    let mut found = Vec::new();
    let mut queue: Vec<usize> = index.by_pid.get(&pid).copied().into_iter().collect();
    queue.extend(index.groups.get(&pid).into_iter().flatten());
    while let Some(position) = queue.pop() {
        let process = &processes[position];
        if !seen.insert(process.pid) {
            continue;
        }
        found.push(process);
        queue.extend(index.children.get(&process.pid).into_iter().flatten());
    }
    found
}

/// Busy and total jiffies of all CPUs, from the first line of /proc/stat.
fn host_cpu() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

fn meminfo(field: &str, text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(field))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// The host as the sampler sees it now.
pub fn system_info(cpu_percent: Option<f32>) -> SystemInfo {
    let memory = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let load: Vec<f64> = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    let daemon = procinfo::stat(std::process::id());
    SystemInfo {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        cpu_percent,
        load: [0, 1, 2].map(|i| load.get(i).copied().unwrap_or(0.0)),
        memory_total: meminfo("MemTotal:", &memory).unwrap_or(0),
        memory_available: meminfo("MemAvailable:", &memory).unwrap_or(0),
        daemon_pid: std::process::id(),
        daemon_memory: daemon.map_or(0, |d| d.rss_pages * procinfo::page_size()),
        // Filled in by the supervisor, which owns the writer.
        state_writes: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(pid: u32, ppid: u32, pgrp: u32) -> ProcStat {
        ProcStat {
            pid,
            ppid,
            pgrp,
            start_time: 1,
            zombie: false,
            exiting: false,
            cpu_ticks: 0,
            rss_pages: pid as u64,
        }
    }

    #[test]
    fn a_tree_is_descendants_plus_the_process_group() {
        let processes = vec![
            process(10, 1, 10),  // the instance
            process(11, 10, 10), // its child
            process(12, 11, 12), // a grandchild in its own group (setsid)
            process(13, 1, 10),  // an orphan left in the group
            process(20, 1, 20),  // someone else
        ];
        let index = Index::of(&processes);
        let mut pids: Vec<u32> = tree(10, &processes, &index).iter().map(|p| p.pid).collect();
        pids.sort();
        assert_eq!(pids, [10, 11, 12, 13]);
    }
}
