//! Killing what escaped instances' process groups, for many stops with one
//! look at the daemon's children.
//!
//! Every stop looks for processes of its instance that left the group
//! (`setsid`) and were reparented to the daemon, by reading the daemon's
//! children and their environments ([`spawn::kill_escaped`]). With
//! thousands of instances that list is thousands long, and a `restart all`
//! read it once per instance: quadratic. Stops now hand their request to
//! one task, which serves every request that came in while it was busy with
//! the next single read. A request is only ever served by a read that began
//! after it was made, so nothing that escaped before a stop asked is
//! missed.

use std::collections::HashSet;
use std::sync::Weak;

use tokio::sync::{mpsc, oneshot};

use super::Supervisor;
use crate::spawn::{self, Escapees};

/// One instance's request: its marks, what to spare, and where to answer
/// how many were killed.
struct Request {
    marks: Vec<String>,
    except: HashSet<u32>,
    found: oneshot::Sender<usize>,
}

/// The stops' door to the task that kills escapees.
#[derive(Debug)]
pub(crate) struct Escapes {
    requests: mpsc::UnboundedSender<Request>,
}

/// The task's end, until the supervisor exists to start it.
pub(super) struct Pending(mpsc::UnboundedReceiver<Request>);

impl Escapes {
    /// The door, and what [`Pending::start`] turns into its task.
    pub(super) fn new() -> (Self, Pending) {
        let (requests, receiver) = mpsc::unbounded_channel();
        (Self { requests }, Pending(receiver))
    }

    /// Kills what escaped the group of the instance carrying `marks`,
    /// sparing `except` (and every instance's recorded processes); returns
    /// how many were found.
    pub(crate) async fn kill(&self, marks: Vec<String>, except: HashSet<u32>) -> usize {
        let (found, answer) = oneshot::channel();
        let request = Request {
            marks,
            except,
            found,
        };
        if self.requests.send(request).is_err() {
            return 0;
        }
        answer.await.unwrap_or(0)
    }
}

impl Pending {
    /// Serves requests in batches until the supervisor is gone.
    pub(super) fn start(self, supervisor: Weak<Supervisor>) {
        let Pending(mut requests) = self;
        tokio::spawn(async move {
            while let Some(first) = requests.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = requests.try_recv() {
                    batch.push(more);
                }
                let Some(leaders) = supervisor.upgrade().map(|s| s.known_pids()) else {
                    return;
                };
                let served = tokio::task::spawn_blocking(move || {
                    let wanted: Vec<Escapees<'_>> = batch
                        .iter()
                        .map(|request| Escapees {
                            marks: &request.marks,
                            except: &request.except,
                        })
                        .collect();
                    let found = spawn::kill_escaped(&wanted, &leaders);
                    (batch, found)
                })
                .await;
                // A panicked read drops its batch: each stop then hears 0.
                if let Ok((batch, found)) = served {
                    for (request, found) in batch.into_iter().zip(found) {
                        let _ = request.found.send(found);
                    }
                }
            }
        });
    }
}
