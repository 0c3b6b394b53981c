//! Facts about processes read from `/proc`: start times (to tell a process
//! from a later one that reuses its pid), process groups and environments.

use std::path::Path;

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id.
    pub pid: u32,
    /// Parent pid.
    pub ppid: u32,
    /// Process group id.
    pub pgrp: u32,
    /// Start time in clock ticks after boot.
    pub start_time: u64,
    /// Whether it is a zombie.
    pub zombie: bool,
    /// Whether it has begun to exit (`PF_EXITING`): its files are being
    /// closed, its locks released.
    pub exiting: bool,
    /// CPU time used, user plus system, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

/// Reads `/proc/<pid>/stat`; `None` when the process does not exist.
pub fn stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name (field 2) may contain spaces and parentheses; the
    // fields after it start after the last ')'.
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_once('(')?.0.trim().parse().ok()?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field n is fields[n - 3].
    Some(ProcStat {
        pid,
        zombie: *fields.first()? == "Z",
        exiting: fields.get(6)?.parse::<u64>().ok()? & PF_EXITING != 0,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
        cpu_ticks: fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?,
        rss_pages: fields.get(21)?.parse().ok()?,
    })
}

/// The children of `pid`: every one of its threads' `children` list (a
/// child belongs to the thread that forked it). Empty when unreadable.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The name (`comm`) the daemon's spawner gives itself.
pub const SPAWNER_NAME: &std::ffi::CStr = c"pmdaemon-spawn";

/// The spawner of daemon `daemon`: its oldest child named
/// [`SPAWNER_NAME`] (a process the spawner is cloning carries that name too
/// until it execs).
pub fn spawner_of(daemon: u32) -> Option<u32> {
    let name = SPAWNER_NAME.to_bytes();
    children(daemon)
        .into_iter()
        .filter(|child| {
            std::fs::read(format!("/proc/{child}/comm"))
                .is_ok_and(|comm| comm.strip_suffix(b"\n").unwrap_or(&comm) == name)
        })
        .filter_map(|child| stat(child).map(|stat| (stat.start_time, child)))
        .min()
        .map(|(_, child)| child)
}

/// The kernel's flag for a task that has begun to exit.
const PF_EXITING: u64 = 0x4;

/// Whether `pid` is gone or going: absent, a zombie, exiting, or with a
/// SIGKILL pending that it has not yet acted on. A process killed a moment
/// ago still holds its files (and their locks) until it has exited.
pub fn is_ending(pid: u32) -> bool {
    let Some(stat) = stat(pid) else {
        return true;
    };
    if stat.zombie || stat.exiting {
        return true;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    // SIGKILL is signal 9: bit 8 of the pending masks.
    status
        .lines()
        .filter_map(|line| {
            line.strip_prefix("SigPnd:")
                .or_else(|| line.strip_prefix("ShdPnd:"))
        })
        .filter_map(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .any(|mask| mask & (1 << 8) != 0)
}

/// Every process on the system.
pub fn all() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect()
}

/// The environment of a process, as read once from `/proc/PID/environ`.
#[derive(Debug, Clone)]
pub struct Environ(Vec<u8>);

impl Environ {
    fn entries(&self) -> impl Iterator<Item = &[u8]> {
        self.0.split(|b| *b == 0)
    }

    /// Whether it holds every `NAME=value` of `marks`.
    pub fn has_all(&self, marks: &[String]) -> bool {
        marks
            .iter()
            .all(|mark| self.entries().any(|entry| entry == mark.as_bytes()))
    }

    /// The value of variable `name`, if it has it.
    pub fn var(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.entries()
            .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }

    /// Whether it has variable `name`.
    pub fn has_var(&self, name: &str) -> bool {
        self.var(name).is_some()
    }
}

/// The environment of `pid`, if it is readable.
pub fn environ(pid: u32) -> Option<Environ> {
    std::fs::read(Path::new("/proc").join(pid.to_string()).join("environ"))
        .ok()
        .map(Environ)
}

/// Whether the environment of `pid` holds every `NAME=value` of `marks`.
pub fn environ_has(pid: u32, marks: &[String]) -> bool {
    environ(pid).is_some_and(|environ| environ.has_all(marks))
}

/// Clock ticks per second, for CPU times.
pub fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |t| t as u64)
}

/// Bytes per memory page.
pub fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_process_is_ending_before_it_is_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(!is_ending(child.id()));
        child.kill().unwrap();
        // Killed but not yet waited for: a zombie, or still exiting.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !is_ending(child.id()) {
            assert!(std::time::Instant::now() < deadline, "never seen ending");
            std::thread::yield_now();
        }
        child.wait().unwrap();
        assert!(is_ending(child.id()));
    }

    #[test]
    fn stat_parses_names_with_spaces_and_parentheses() {
        let line = "1234 (my (weird) app) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 987654 1000 100";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.pid, 1234);
        assert_eq!(stat.ppid, 1);
        assert_eq!(stat.pgrp, 1234);
        assert_eq!(stat.start_time, 987654);
        assert_eq!(stat.cpu_ticks, 8);
        assert_eq!(stat.rss_pages, 100);
        assert!(!stat.zombie);
    }

    #[test]
    fn our_own_process_is_found_with_its_environment() {
        let me = std::process::id();
        let stat = stat(me).unwrap();
        assert_eq!(stat.pid, me);
        assert!(stat.start_time > 0);
        let path = format!("PATH={}", std::env::var("PATH").unwrap());
        assert!(environ_has(me, &[path]));
        assert!(!environ_has(me, &["PMDAEMON_SURELY_UNSET=1".to_string()]));
    }
}
