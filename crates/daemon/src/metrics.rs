//! The sampler: once a second (`PMDAEMON_SAMPLE_INTERVAL_MS`), one scan of
//! `/proc` gives every instance the CPU and memory of its whole process
//! tree (its descendants, and whatever is left in its process group), and
//! the host's CPU, memory and load. It also enforces `max_memory_restart`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
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
}

/// Default sampling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

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
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut previous = Previous::default();
    // Instances already being restarted for memory, by pid.
    let mut restarting: HashSet<u32> = HashSet::new();
    let ticks_per_second = procinfo::ticks_per_second() as f64;
    let page = procinfo::page_size();
    loop {
        ticker.tick().await;
        let Some(supervisor) = supervisor.upgrade() else {
            return;
        };
        let targets = supervisor.sampling_targets();
        let processes = procinfo::all();
        let now = Instant::now();
        let elapsed = previous.at.map(|at| now.duration_since(at).as_secs_f64());
        let mut ticks = HashMap::new();
        let mut samples = Vec::new();
        let index = Index::of(&processes);
        for (id, pid, limit) in targets {
            let tree = tree(pid, &processes, &index);
            if tree.iter().all(|p| p.rss_pages == 0) {
                // Not in this scan, or caught inside execve with no pages
                // mapped yet: keep the last sample rather than report 0.
                continue;
            }
            let mut cpu_ticks = 0;
            let mut rss_pages = 0;
            for process in &tree {
                let key = (process.pid, process.start_time);
                if let Some(before) = previous.ticks.get(&key) {
                    cpu_ticks += process.cpu_ticks.saturating_sub(*before);
                }
                ticks.insert(key, process.cpu_ticks);
                rss_pages += process.rss_pages;
            }
            let cpu_percent = match elapsed {
                Some(seconds) if seconds > 0.0 => {
                    (cpu_ticks as f64 / ticks_per_second / seconds * 100.0) as f32
                }
                _ => 0.0,
            };
            let memory_bytes = rss_pages * page;
            samples.push((
                id,
                Sample {
                    cpu_percent,
                    memory_bytes,
                },
            ));
            if let Some(limit) = limit.filter(|l| memory_bytes > *l) {
                if restarting.insert(pid) {
                    let reason = format!(
                        "memory {} exceeded max_memory_restart {}",
                        format_bytes(memory_bytes),
                        format_bytes(limit)
                    );
                    Arc::clone(&supervisor).request_restart(id, reason);
                }
            }
        }
        restarting.retain(|pid| processes.iter().any(|p| p.pid == *pid));
        let host = host_cpu();
        let host_percent = match (host, previous.host) {
            (Some((busy, total)), Some((busy_before, total_before))) if total > total_before => {
                Some(
                    (busy.saturating_sub(busy_before) as f64 / (total - total_before) as f64
                        * 100.0) as f32,
                )
            }
            _ => None,
        };
        supervisor.store_samples(&samples, system_info(host_percent));
        previous = Previous {
            ticks,
            host,
            at: Some(now),
        };
    }
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
