//! The messages of `GET /ws`: what a client sends ([`ClientMessage`]) and
//! the events the daemon streams ([`Event`]), filtered per connection by a
//! [`Subscribe`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Health, LogLine, Status};

/// Which events a `GET /ws` client wants (see [`Subscribe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// [`Event::Status`].
    Status,
    /// [`Event::Restarted`].
    Restarted,
    /// [`Event::Health`].
    Health,
    /// [`Event::Metrics`].
    Metrics,
    /// [`Event::Removed`].
    Removed,
    /// [`Event::Log`]: only when asked for by name.
    Log,
}

/// A message from a `GET /ws` client, one JSON object per text frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
    /// The API key (first message, when the door needs one and no header
    /// carried it: browsers cannot set headers on a WebSocket).
    Auth {
        /// The key.
        key: String,
    },
    /// Replaces the connection's filters.
    Subscribe(Subscribe),
}

/// The filters of a `GET /ws` connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Subscribe {
    /// Only events of these apps or instances (by name); empty: all.
    pub apps: Vec<String>,
    /// Only these kinds; empty: every kind but `log`.
    pub kinds: Vec<EventKind>,
    /// With `log`: the last lines of each followed file sent first.
    pub lines: usize,
}

impl Subscribe {
    /// Whether events of `kind` are wanted.
    pub fn wants_kind(&self, kind: EventKind) -> bool {
        if self.kinds.is_empty() {
            kind != EventKind::Log
        } else {
            self.kinds.contains(&kind)
        }
    }

    /// Whether events of instance `instance` of app `app` are wanted.
    pub fn wants_instance(&self, app: &str, instance: &str) -> bool {
        self.apps.is_empty() || self.apps.iter().any(|a| a == app || a == instance)
    }
}

/// One instance's metric sample in an [`Event::Metrics`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetricSample {
    /// Instance id.
    pub id: u32,
    /// Instance name.
    pub instance: String,
    /// App name.
    pub app: String,
    /// CPU use in percent of one core.
    pub cpu_percent: f32,
    /// Resident memory of the process tree in bytes.
    pub memory_bytes: u64,
}

/// A message of `GET /ws` from the daemon, one JSON object per text frame,
/// tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    /// Sent once the connection is accepted (after the key, if needed).
    Hello {
        /// The daemon's version.
        version: String,
        /// The filters in force.
        subscribe: Subscribe,
    },
    /// The filters were replaced.
    Subscribed(Subscribe),
    /// The last client message was refused, or the connection is closing.
    Error {
        /// Why.
        error: String,
    },
    /// An instance's status or process changed.
    Status {
        /// Instance id.
        id: u32,
        /// Instance name.
        instance: String,
        /// App name.
        app: String,
        /// The new status.
        status: Status,
        /// The running process, if any.
        pid: Option<u32>,
    },
    /// A new process replaced an instance's previous one.
    Restarted {
        /// Instance id.
        id: u32,
        /// Instance name.
        instance: String,
        /// App name.
        app: String,
        /// The new process.
        pid: u32,
        /// Restarts so far.
        restarts: u32,
        /// Why, in words (`exited: signal 9 after 1200 ms`, `restarted on
        /// request`, a health check's or memory limit's reason, …).
        reason: String,
    },
    /// An instance's health check changed its verdict.
    Health {
        /// Instance id.
        id: u32,
        /// Instance name.
        instance: String,
        /// App name.
        app: String,
        /// The verdict.
        health: Health,
        /// The failed check's error.
        error: Option<String>,
    },
    /// What the sampler measured this tick (each second by default).
    Metrics {
        /// Unix time in milliseconds.
        at_ms: u64,
        /// One per sampled instance.
        samples: Vec<MetricSample>,
    },
    /// An instance was deleted (or scaled away).
    Removed {
        /// Instance id.
        id: u32,
        /// Instance name.
        instance: String,
        /// App name.
        app: String,
    },
    /// A line an instance wrote.
    Log(LogLine),
}

impl Event {
    /// The kind a filter selects it by (None for the connection's own
    /// messages, which are always sent).
    pub fn kind(&self) -> Option<EventKind> {
        match self {
            Event::Hello { .. } | Event::Subscribed(_) | Event::Error { .. } => None,
            Event::Status { .. } => Some(EventKind::Status),
            Event::Restarted { .. } => Some(EventKind::Restarted),
            Event::Health { .. } => Some(EventKind::Health),
            Event::Metrics { .. } => Some(EventKind::Metrics),
            Event::Removed { .. } => Some(EventKind::Removed),
            Event::Log(_) => Some(EventKind::Log),
        }
    }

    /// The event as `filter` lets it through: None when filtered out; a
    /// metrics event keeps only the wanted instances' samples.
    pub fn filtered(&self, filter: &Subscribe) -> Option<std::borrow::Cow<'_, Event>> {
        use std::borrow::Cow;
        let Some(kind) = self.kind() else {
            return Some(Cow::Borrowed(self));
        };
        if !filter.wants_kind(kind) {
            return None;
        }
        let wanted = match self {
            Event::Status { app, instance, .. }
            | Event::Restarted { app, instance, .. }
            | Event::Health { app, instance, .. }
            | Event::Removed { app, instance, .. } => filter.wants_instance(app, instance),
            // A connection follows the logs of the instances its filter
            // named when it subscribed: its lines are all wanted.
            Event::Log(_) => true,
            Event::Metrics { at_ms, samples } => {
                if filter.apps.is_empty() {
                    return Some(Cow::Borrowed(self));
                }
                let samples: Vec<MetricSample> = samples
                    .iter()
                    .filter(|s| filter.wants_instance(&s.app, &s.instance))
                    .cloned()
                    .collect();
                return Some(Cow::Owned(Event::Metrics {
                    at_ms: *at_ms,
                    samples,
                }));
            }
            _ => true,
        };
        wanted.then_some(Cow::Borrowed(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(instance: &str, app: &str) -> MetricSample {
        MetricSample {
            id: 0,
            instance: instance.into(),
            app: app.into(),
            cpu_percent: 1.0,
            memory_bytes: 1,
        }
    }

    #[test]
    fn logs_are_sent_only_when_asked_for() {
        let line = Event::Log(LogLine {
            instance: "web-0".into(),
            stream: crate::api::LogStream::Out,
            line: "hi".into(),
        });
        assert!(line.filtered(&Subscribe::default()).is_none());
        let logs = Subscribe {
            kinds: vec![EventKind::Log],
            ..Subscribe::default()
        };
        assert!(line.filtered(&logs).is_some());
    }

    #[test]
    fn filters_match_apps_or_instances_and_narrow_metrics() {
        let metrics = Event::Metrics {
            at_ms: 1,
            samples: vec![sample("web-0", "web"), sample("api-0", "api")],
        };
        for name in ["api", "api-0"] {
            let filter = Subscribe {
                apps: vec![name.into()],
                ..Subscribe::default()
            };
            let narrowed = metrics.filtered(&filter).unwrap().into_owned();
            assert_eq!(
                narrowed,
                Event::Metrics {
                    at_ms: 1,
                    samples: vec![sample("api-0", "api")],
                }
            );
        }
        let status = Event::Removed {
            id: 0,
            instance: "web-0".into(),
            app: "web".into(),
        };
        let only_api = Subscribe {
            apps: vec!["api".into()],
            ..Subscribe::default()
        };
        assert!(status.filtered(&only_api).is_none());
        let hello = Event::Error { error: "x".into() };
        assert!(hello.filtered(&only_api).is_some());
    }

    #[test]
    fn client_messages_read_as_documented() {
        let auth: ClientMessage = serde_json::from_str(r#"{"type":"auth","key":"k"}"#).unwrap();
        assert_eq!(auth, ClientMessage::Auth { key: "k".into() });
        let subscribe: ClientMessage = serde_json::from_str(
            r#"{"type":"subscribe","apps":["web"],"kinds":["log"],"lines":5}"#,
        )
        .unwrap();
        assert_eq!(
            subscribe,
            ClientMessage::Subscribe(Subscribe {
                apps: vec!["web".into()],
                kinds: vec![EventKind::Log],
                lines: 5,
            })
        );
        assert!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"subscribe","app":"x"}"#).is_err()
        );
    }
}
