//! Restarts that an app asks for in its configuration: `watch` (file
//! changes, debounced so that a burst of writes restarts once) and
//! `cron_restart` (a schedule). Each is one task per app, aborted when the
//! app is deleted or reconfigured.

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use pmdaemon_core::api::LogStream;
use pmdaemon_core::config::{parse_cron, AppConfig};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// What watch and cron tasks ask of the supervisor, which implements it;
/// this module does not know the supervisor.
pub(crate) trait Restarts: Send + Sync + 'static {
    /// Restarts what `target` names because of `reason`; resolves when done.
    fn restart_for(
        self: Arc<Self>,
        target: String,
        reason: String,
    ) -> impl std::future::Future<Output = ()> + Send;
    /// The home, whose files never count as changes.
    fn home(&self) -> &crate::Home;
}

/// Quiet time after the last change before the restart, unless the app sets
/// `watch_delay`.
const DEFAULT_WATCH_DELAY: Duration = Duration::from_millis(500);

/// Starts the trigger tasks `config` asks for; the receiver (with
/// `watch`) hears when the files are watched.
pub(crate) fn arm<R: Restarts>(
    supervisor: &Arc<R>,
    config: &AppConfig,
) -> (Vec<JoinHandle<()>>, Option<oneshot::Receiver<()>>) {
    let mut tasks = Vec::new();
    let mut watching = None;
    let weak = Arc::downgrade(supervisor);
    if !config.watch.is_empty() {
        // Adding inotify watches to a big tree takes a while: on a blocking
        // thread, not in the daemon's event loop.
        let (ready, heard) = oneshot::channel();
        watching = Some(heard);
        let config = config.clone();
        let home = supervisor.home().clone();
        let weak = weak.clone();
        tasks.push(tokio::spawn(async move {
            let for_watcher = config.clone();
            let made = tokio::task::spawn_blocking(move || watcher(&for_watcher))
                .await
                .ok()
                .flatten();
            let _ = ready.send(());
            if let Some((watcher, events)) = made {
                watch(weak, config, home, watcher, events).await;
            }
        }));
    }
    if let Some(expression) = &config.cron_restart {
        match parse_cron(expression) {
            Ok(cron) => tasks.push(tokio::spawn(schedule(weak, config.name.clone(), cron))),
            Err(err) => tracing::warn!("app {}: {err}", config.name),
        }
    }
    (tasks, watching)
}

async fn restart<R: Restarts>(supervisor: &Weak<R>, app: &str, reason: String) -> bool {
    let Some(supervisor) = supervisor.upgrade() else {
        return false;
    };
    supervisor.restart_for(app.to_string(), reason).await;
    true
}

type Events = mpsc::UnboundedReceiver<notify::Event>;

/// Watches the app's `watch` paths (a path that cannot be watched is
/// warned about and skipped).
fn watcher(config: &AppConfig) -> Option<(notify::RecommendedWatcher, Events)> {
    let cwd = config.cwd.clone().unwrap_or_else(|| PathBuf::from("."));
    let (sender, events) = mpsc::unbounded_channel();
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                let _ = sender.send(event);
            }
        }) {
            Ok(watcher) => watcher,
            Err(err) => {
                tracing::warn!("app {}: cannot watch files: {err}", config.name);
                return None;
            }
        };
    for path in &config.watch {
        let path = cwd.join(path);
        if let Err(err) = watcher.watch(&path, RecursiveMode::Recursive) {
            tracing::warn!(
                "app {}: cannot watch {}: {err}",
                config.name,
                path.display()
            );
        }
    }
    Some((watcher, events))
}

/// Restarts the app once per burst of relevant changes.
async fn watch(
    supervisor: Weak<impl Restarts>,
    config: AppConfig,
    home: crate::Home,
    // Dropping it stops the watching.
    _watcher: notify::RecommendedWatcher,
    mut events: Events,
) {
    let cwd = config.cwd.clone().unwrap_or_else(|| PathBuf::from("."));
    let mut ignored: Vec<String> = config.ignore_watch.clone();
    if ignored.is_empty() {
        ignored = pmdaemon_core::config::DEFAULT_IGNORE_WATCH
            .iter()
            .map(|s| s.to_string())
            .collect();
    }
    // The app's own log files (whatever their names per instance) must not
    // restart it, or each restart's log line would trigger the next.
    let mut quiet: Vec<PathBuf> = vec![home.root().to_path_buf()];
    for index in 0..config.instances {
        let name = config.instance_name(index);
        for stream in [LogStream::Out, LogStream::Err] {
            quiet.push(crate::logs::log_path(&home, &config, index, &name, stream));
        }
    }
    let ignored = Ignored::new(&ignored);
    let relevant = |event: &notify::Event| {
        !matches!(event.kind, EventKind::Access(_) | EventKind::Other)
            && event
                .paths
                .iter()
                .any(|path| !is_ignored(path, &cwd, &ignored, &quiet))
    };
    let delay = match config.watch_delay {
        0 => DEFAULT_WATCH_DELAY,
        ms => Duration::from_millis(ms),
    };
    while let Some(event) = events.recv().await {
        if !relevant(&event) {
            continue;
        }
        let first = event
            .paths
            .first()
            .map(|p| p.strip_prefix(&cwd).unwrap_or(p).display().to_string())
            .unwrap_or_default();
        // Debounce: wait until the burst is over. Only relevant changes
        // extend it; a chatty app's own log writes must not.
        let mut deadline = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                next = events.recv() => match next {
                    None => return,
                    Some(event) if relevant(&event) => deadline = tokio::time::Instant::now() + delay,
                    Some(_) => {}
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        if !restart(&supervisor, &config.name, format!("watch: {first} changed")).await {
            return;
        }
    }
}

/// `ignore_watch`: names or path prefixes (`node_modules`, `dist/cache`),
/// and globs (`*.log`, `tmp/**`) as PM2 takes them.
struct Ignored {
    words: Vec<String>,
    globs: globset::GlobSet,
}

impl Ignored {
    fn new(patterns: &[String]) -> Self {
        let is_glob = |p: &String| p.contains(['*', '?', '[', '{']);
        let mut globs = globset::GlobSetBuilder::new();
        for pattern in patterns.iter().filter(|p| is_glob(p)) {
            match globset::Glob::new(pattern) {
                Ok(glob) => {
                    globs.add(glob);
                }
                Err(err) => tracing::warn!("ignore_watch '{pattern}' is not a valid glob: {err}"),
            }
        }
        Self {
            words: patterns.iter().filter(|p| !is_glob(p)).cloned().collect(),
            globs: globs.build().unwrap_or_else(|_| globset::GlobSet::empty()),
        }
    }
}

fn is_ignored(path: &Path, cwd: &Path, ignored: &Ignored, quiet: &[PathBuf]) -> bool {
    if quiet.iter().any(|q| path.starts_with(q)) {
        return true;
    }
    let relative = path.strip_prefix(cwd).unwrap_or(path);
    if ignored.globs.is_match(relative)
        || relative
            .file_name()
            .is_some_and(|name| ignored.globs.is_match(name))
    {
        return true;
    }
    ignored.words.iter().any(|pattern| {
        relative.starts_with(pattern)
            || relative.components().any(
                |c| matches!(c, Component::Normal(name) if name.to_str() == Some(pattern.as_str())),
            )
    })
}

async fn schedule<R: Restarts>(supervisor: Weak<R>, app: String, cron: croner::Cron) {
    loop {
        let now = chrono::Local::now();
        let next = match cron.find_next_occurrence(&now, false) {
            Ok(next) => next,
            Err(err) => {
                tracing::warn!("app {app}: cron_restart has no next time: {err}");
                return;
            }
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        if !restart(
            &supervisor,
            &app,
            format!("cron_restart at {}", next.format("%H:%M:%S")),
        )
        .await
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_paths_match_names_anywhere_and_prefixes() {
        let cwd = Path::new("/app");
        let ignored = Ignored::new(&[
            "node_modules".to_string(),
            "dist/cache".to_string(),
            "*.log".to_string(),
            "tmp/**".to_string(),
        ]);
        for (path, expected) in [
            ("/app/debug.log", true),
            ("/app/src/deep/trace.log", true),
            ("/app/tmp/a/b.txt", true),
            ("/app/src/logger.js", false),
        ] {
            assert_eq!(
                is_ignored(Path::new(path), cwd, &ignored, &[]),
                expected,
                "{path}"
            );
        }
        let quiet = vec![PathBuf::from("/app/logs")];
        assert!(is_ignored(
            Path::new("/app/node_modules/x/y.js"),
            cwd,
            &ignored,
            &quiet
        ));
        assert!(is_ignored(
            Path::new("/app/src/node_modules/z"),
            cwd,
            &ignored,
            &quiet
        ));
        assert!(is_ignored(
            Path::new("/app/dist/cache/a"),
            cwd,
            &ignored,
            &quiet
        ));
        assert!(is_ignored(
            Path::new("/app/logs/out.log"),
            cwd,
            &ignored,
            &quiet
        ));
        assert!(!is_ignored(
            Path::new("/app/src/main.js"),
            cwd,
            &ignored,
            &quiet
        ));
    }
}
