//! The live events of `GET /ws`: one broadcast channel that the process
//! table feeds as its records change.
//!
//! Events are derived in one place, [`Events::changed`], from a record
//! before and after each change (status, process, health, history), so
//! that the instance tasks emit nothing themselves and no change goes
//! unseen. Sending never waits: a client that falls behind the channel's
//! capacity misses events and is dropped by its connection
//! ([`crate::api`]'s `ws`), never slowing the daemon.

use std::sync::Arc;

use pmdaemon_core::api::{Event, Health, HistoryEvent, Status};
use tokio::sync::broadcast;

use crate::store::InstanceRecord;

/// Events a client may fall behind by before it is dropped.
pub const CAPACITY: usize = 1024;

/// The sending side, owned by the supervisor.
#[derive(Debug)]
pub struct Events {
    sender: broadcast::Sender<Arc<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            sender: broadcast::Sender::new(CAPACITY),
        }
    }
}

/// What an event is derived from: a record's fields before a change.
#[derive(Debug, Clone, PartialEq)]
pub struct Before {
    status: Status,
    pid: Option<u32>,
    health: Health,
    health_error: Option<String>,
}

impl Before {
    /// The fields of `record` that events report.
    pub fn of(record: &InstanceRecord) -> Self {
        Self {
            status: record.status,
            pid: record.pid,
            health: record.health,
            health_error: record.health_error.clone(),
        }
    }
}

impl Events {
    /// A new receiver of every event sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// Whether anyone listens (events are not built for nobody).
    pub fn listened(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Sends `event` to every receiver; never waits.
    pub fn send(&self, event: Event) {
        if self.listened() {
            let _ = self.sender.send(Arc::new(event));
        }
    }

    /// Sends the events that a change of `record` from `before` makes.
    pub fn changed(&self, before: &Before, record: &InstanceRecord) {
        if !self.listened() {
            return;
        }
        let (id, instance, app) = (record.id, record.name.clone(), record.app.clone());
        if before.status != record.status || before.pid != record.pid {
            self.send(Event::Status {
                id,
                instance: instance.clone(),
                app: app.clone(),
                status: record.status,
                pid: record.pid,
            });
        }
        if let Some(pid) = record.pid.filter(|pid| before.pid != Some(*pid)) {
            if let Some(reason) = restart_reason(record.history.iter()) {
                self.send(Event::Restarted {
                    id,
                    instance: instance.clone(),
                    app: app.clone(),
                    pid,
                    restarts: record.restarts,
                    reason,
                });
            }
        }
        if before.health != record.health || before.health_error != record.health_error {
            self.send(Event::Health {
                id,
                instance,
                app,
                health: record.health,
                error: record.health_error.clone(),
            });
        }
    }
}

/// Why the process that just started replaced the previous one, from the
/// history since the previous start (oldest first, the new `started` last);
/// None when it is no restart (a first start, a start after a stop, a
/// reload's new process).
pub fn restart_reason<'a>(
    history: impl DoubleEndedIterator<Item = &'a HistoryEvent>,
) -> Option<String> {
    let mut history = history.rev();
    if history.next().is_none_or(|last| last.event != "started") {
        return None;
    }
    let mut since: Vec<&HistoryEvent> = history
        .take_while(|e| e.event != "started" && e.event != "reloaded")
        .collect();
    since.reverse();
    if since
        .iter()
        .any(|e| matches!(e.event.as_str(), "stopped" | "created" | "resumed"))
    {
        return None;
    }
    let find = |name: &str| since.iter().rev().find(|e| e.event == name);
    if let Some(why) = find("restart") {
        return Some(why.reason.clone());
    }
    if let Some(request) = find("restarting") {
        return Some(request.reason.clone());
    }
    find("exited").map(|exit| format!("exited: {}", exit.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(events: &[(&str, &str)]) -> Vec<HistoryEvent> {
        events
            .iter()
            .map(|(event, reason)| HistoryEvent {
                at_ms: 0,
                event: event.to_string(),
                reason: reason.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_crash_is_a_restart_with_its_exit() {
        let h = history(&[
            ("created", "start"),
            ("started", "pid 1"),
            ("exited", "signal 9 after 1200 ms"),
            ("started", "pid 2"),
        ]);
        assert_eq!(
            restart_reason(h.iter()).as_deref(),
            Some("exited: signal 9 after 1200 ms")
        );
    }

    #[test]
    fn a_reason_given_by_a_probe_wins() {
        let h = history(&[
            ("started", "pid 1"),
            ("restart", "memory 2 MB exceeded max_memory_restart 1 MB"),
            ("exited", "signal 15 on stop"),
            ("restarting", "restarted on request"),
            ("started", "pid 2"),
        ]);
        assert_eq!(
            restart_reason(h.iter()).as_deref(),
            Some("memory 2 MB exceeded max_memory_restart 1 MB")
        );
    }

    #[test]
    fn first_starts_and_starts_after_a_stop_are_no_restarts() {
        let first = history(&[("created", "start"), ("started", "pid 1")]);
        assert_eq!(restart_reason(first.iter()), None);
        let after_stop = history(&[
            ("started", "pid 1"),
            ("exited", "signal 15 on stop"),
            ("stopped", "stopped on request"),
            ("started", "pid 2"),
        ]);
        assert_eq!(restart_reason(after_stop.iter()), None);
        let requested = history(&[
            ("started", "pid 1"),
            ("exited", "signal 15 on stop"),
            ("restarting", "restarted on request"),
            ("started", "pid 2"),
        ]);
        assert_eq!(
            restart_reason(requested.iter()).as_deref(),
            Some("restarted on request")
        );
    }
}
