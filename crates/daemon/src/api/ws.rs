//! `GET /ws`: the live events ([`Event`]) of the process table, filtered
//! per connection by the client's [`Subscribe`] messages.
//!
//! Over TCP with a key, a client that sent no key header must send
//! `{"type":"auth","key":"…"}` first (browsers cannot set headers on a
//! WebSocket; a key in the URL would end up in logs and histories). Each
//! connection reads the supervisor's broadcast channel at its own pace: one
//! that falls [`crate::events::CAPACITY`] events behind, or cannot take a
//! frame within [`SEND_TIMEOUT`], is told so and dropped. The daemon never
//! waits for a client.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use hyper::body::Bytes;
use pmdaemon_core::api::{ClientMessage, Event, EventKind, LogLine, Subscribe};
use pmdaemon_core::VERSION;
use tokio::sync::{broadcast, mpsc};

use super::AppState;
use crate::web::auth::KeyRequired;
use crate::web::Opened;

/// How long a client has to send its key.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one frame may wait for a client that does not read.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest message a client may send.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Close code of a refused key (4000–4999 are the application's).
const CLOSE_UNAUTHORIZED: u16 = 4401;

/// Close code of a client that fell behind.
const CLOSE_TOO_SLOW: u16 = 4408;

/// Upgrades the connection.
pub async fn ws(
    State(state): State<AppState>,
    key: Option<Extension<KeyRequired>>,
    door: Option<Extension<Opened>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let key = key.map(|Extension(key)| key);
    let door = door.map(|Extension(door)| door);
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        // Clients send a few small messages: a 4 KiB read buffer instead of
        // the 128 KiB default keeps 100 clients at ~2 MB, not ~15 MB.
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| serve(socket, state, key, door))
}

async fn serve(
    mut socket: WebSocket,
    state: AppState,
    key: Option<KeyRequired>,
    mut door: Option<Opened>,
) {
    // Subscribed before the hello: nothing after it goes unseen.
    let mut events = state.supervisor.events.subscribe();
    if let Some(key) = key {
        if let Err(why) = authenticate(&mut socket, &key).await {
            close(&mut socket, CLOSE_UNAUTHORIZED, &why).await;
            return;
        }
    }
    // A new listener: the sampler goes to its full rate now, not after
    // an idle minute.
    state.supervisor.sampler.nudge();
    let mut filter = Subscribe::default();
    let hello = Event::Hello {
        version: VERSION.to_string(),
        subscribe: filter.clone(),
    };
    if send(&mut socket, &hello).await.is_err() {
        return;
    }
    let mut logs: Option<mpsc::Receiver<Bytes>> = None;
    let mut stopped = Box::pin(state.supervisor.stopped());
    loop {
        tokio::select! {
            message = socket.recv() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                };
                let reply = match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(ClientMessage::Subscribe(wanted)) => {
                        match follow_logs(&state, &wanted) {
                            Ok(follower) => {
                                logs = follower;
                                filter = wanted;
                                Event::Subscribed(filter.clone())
                            }
                            Err(error) => Event::Error { error },
                        }
                    }
                    Ok(ClientMessage::Auth { .. }) => continue,
                    Err(err) => Event::Error {
                        error: format!("not a message this socket understands: {err}"),
                    },
                };
                if send(&mut socket, &reply).await.is_err() {
                    return;
                }
            }
            event = events.recv() => match event {
                Ok(event) => {
                    if let Some(event) = event.filtered(&filter) {
                        if send(&mut socket, &event).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let why = format!("too slow: {missed} events were missed; reconnect");
                    close(&mut socket, CLOSE_TOO_SLOW, &why).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            Some(chunk) = next_log(&mut logs) => {
                let Ok(line) = serde_json::from_slice::<LogLine>(&chunk) else {
                    continue;
                };
                if send(&mut socket, &Event::Log(line)).await.is_err() {
                    return;
                }
            }
            () = &mut stopped => {
                close(&mut socket, 1001, "the daemon is stopping").await;
                return;
            }
            () = door_closed(&mut door) => {
                close(&mut socket, 1001, "the web API was stopped or changed").await;
                return;
            }
        }
    }
}

/// Waits for the first message and checks that it is the key.
async fn authenticate(socket: &mut WebSocket, key: &KeyRequired) -> Result<(), String> {
    let first = tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await;
    let text = match first {
        Ok(Some(Ok(Message::Text(text)))) => text,
        Err(_) => return Err("no API key came in time".into()),
        _ => return Err("the first message must be the API key".into()),
    };
    match serde_json::from_str::<ClientMessage>(&text) {
        Ok(ClientMessage::Auth { key: given }) if key.accepts(&given) => Ok(()),
        Ok(ClientMessage::Auth { .. }) => Err("wrong API key".into()),
        _ => Err(r#"this socket needs the API key first: {"type":"auth","key":"KEY"}"#.into()),
    }
}

/// A follower of the logs the filter asks for, if it asks for any.
fn follow_logs(
    state: &AppState,
    filter: &Subscribe,
) -> Result<Option<mpsc::Receiver<Bytes>>, String> {
    if !filter.wants_kind(EventKind::Log) {
        return Ok(None);
    }
    let supervisor = &state.supervisor;
    let mut sources = Vec::new();
    if filter.apps.is_empty() {
        sources = supervisor
            .log_sources(None, None)
            .map_err(|e| e.to_string())?;
    }
    for name in &filter.apps {
        let found = supervisor
            .log_sources(Some(name), None)
            .map_err(|e| e.to_string())?;
        sources.extend(found);
    }
    sources.dedup_by(|a, b| a.2 == b.2);
    Ok(Some(crate::logs::follow::follow(sources, filter.lines)))
}

/// Resolves when the TCP door closes; never on the Unix socket.
async fn door_closed(door: &mut Option<Opened>) {
    match door {
        Some(door) => door.closed().await,
        None => std::future::pending().await,
    }
}

/// The next line of the follower, or never when there is none.
async fn next_log(logs: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match logs {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends one message; an error when the client is gone or does not read.
async fn send(socket: &mut WebSocket, event: &Event) -> Result<(), ()> {
    let text = serde_json::to_string(event).map_err(|_| ())?;
    match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Says why, then closes.
async fn close(socket: &mut WebSocket, code: u16, why: &str) {
    let _ = send(
        socket,
        &Event::Error {
            error: why.to_string(),
        },
    )
    .await;
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(why.chars().take(120).collect::<String>()),
    };
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
}
