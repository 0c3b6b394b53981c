//! The disk budget: one limit for all the logs together, kept by deleting
//! the oldest rotated files.

use std::path::PathBuf;

use super::path::rotated_files_of;
use super::rotation::ROTATED;

/// The disk budget for all logs (`PMDAEMON_LOG_BUDGET`, e.g. `1G`), if one
/// is set and a rotation happened since the last call: the daemon's
/// housekeeping then calls [`enforce_budget`] with every log it manages.
pub fn budget_due() -> Option<u64> {
    let budget = std::env::var("PMDAEMON_LOG_BUDGET")
        .ok()
        .and_then(|v| pmdaemon_core::units::parse_size(&v).ok())
        .filter(|b| *b > 0)?;
    ROTATED
        .swap(false, std::sync::atomic::Ordering::SeqCst)
        .then_some(budget)
}

/// Deletes the oldest rotated files of `logs` (`<log>.N`, `<log>.N.gz`)
/// until these logs and their rotated files fit in `budget` bytes. Current
/// files are never deleted, and no other file is looked at.
pub fn enforce_budget(logs: &[PathBuf], budget: u64) {
    let mut logs = logs.to_vec();
    logs.sort();
    logs.dedup();
    let mut total = 0;
    let mut rotated: Vec<(std::time::SystemTime, u64, PathBuf)> = Vec::new();
    for log in &logs {
        total += std::fs::metadata(log).map_or(0, |m| m.len());
    }
    for path in rotated_files_of(&logs) {
        if let Ok(meta) = std::fs::metadata(&path) {
            total += meta.len();
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            rotated.push((modified, meta.len(), path));
        }
    }
    rotated.sort();
    for (_, size, path) in rotated {
        if total <= budget {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            tracing::info!("log budget: deleted {}", path.display());
            total = total.saturating_sub(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;

    #[test]
    fn the_budget_deletes_the_oldest_rotated_files_of_our_logs_first_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        // Distinct modification times, oldest first.
        let write = |name: &str, size: usize, age_secs: u64| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![b'x'; size]).unwrap();
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs);
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        };
        // A gap in the numbering (.3) hides nothing.
        write("web-0-out.log.4.gz", 1000, 30);
        write("web-0-out.log.2", 1000, 20);
        write("web-0-out.log.1", 1000, 10);
        write("web-0-out.log", 1500, 0);
        // Not a log of ours: never counted, never deleted.
        write("syslog.1", 5000, 100);
        let logs = [dir.path().join("web-0-out.log")];
        enforce_budget(&logs, 3000);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["syslog.1", "web-0-out.log", "web-0-out.log.1"]);
        enforce_budget(&logs, 10);
        assert!(dir.path().join("syslog.1").exists());
        assert!(
            dir.path().join("web-0-out.log").exists(),
            "a current log is never deleted"
        );
    }
}
