//! `GET /ws`: live events of a real daemon over its TCP door, with the key
//! as the first message or in a header, and the client's filters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helper;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use helper::web::serve;
use helper::{kill, Fixture, DEADLINE};
use pmdaemon_core::api::{ClientMessage, Event, EventKind, Subscribe};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<TcpStream>;

/// Opens `/ws` on 127.0.0.1:port, with extra request headers.
fn connect(port: u16, headers: &[(&str, &str)]) -> Result<Socket, tungstenite::Error> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut request = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    tungstenite::client(request, stream)
        .map(|(socket, _)| socket)
        .map_err(|err| match err {
            tungstenite::HandshakeError::Failure(err) => err,
            tungstenite::HandshakeError::Interrupted(_) => panic!("handshake interrupted"),
        })
}

fn say(socket: &mut Socket, message: &ClientMessage) {
    let text = serde_json::to_string(message).unwrap();
    socket.send(Message::text(text)).unwrap();
}

/// The next event before `deadline`; None when the socket closed.
fn next(socket: &mut Socket, deadline: Instant) -> Option<Event> {
    loop {
        assert!(Instant::now() < deadline, "no event before the deadline");
        match socket.read() {
            Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Message::Close(_)) => return None,
            Ok(_) => {}
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
}

/// Reads until `wanted` matches an event; fails on a close or the deadline.
fn until(socket: &mut Socket, within: Duration, wanted: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + within;
    loop {
        match next(socket, deadline) {
            Some(event) if wanted(&event) => return event,
            Some(_) => {}
            None => panic!("the socket closed"),
        }
    }
}

/// A socket past the key and the hello, with `filter`.
fn subscribed(port: u16, key: &str, filter: Subscribe) -> Socket {
    let mut socket = connect(port, &[]).unwrap();
    say(&mut socket, &ClientMessage::Auth { key: key.into() });
    until(&mut socket, DEADLINE, |e| matches!(e, Event::Hello { .. }));
    say(&mut socket, &ClientMessage::Subscribe(filter.clone()));
    let reply = until(&mut socket, DEADLINE, |e| {
        matches!(e, Event::Subscribed(_) | Event::Error { .. })
    });
    assert_eq!(reply, Event::Subscribed(filter));
    socket
}

#[test]
fn a_killed_instance_is_seen_restarted_within_a_second() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "victim", "--instances", "2"]);
    let (port, key) = serve(&fx);
    let filter = Subscribe {
        apps: vec!["victim-1".into()],
        kinds: vec![EventKind::Restarted, EventKind::Status],
        lines: 0,
    };
    let mut socket = subscribed(port, &key, filter);
    let old = fx
        .wait_for("victim-1", "online", |p| p.pid.is_some())
        .pid
        .unwrap();

    let killed = Instant::now();
    kill(old, libc::SIGKILL);
    let event = until(&mut socket, DEADLINE, |e| {
        matches!(e, Event::Restarted { .. })
    });
    let elapsed = killed.elapsed();
    assert!(
        elapsed < Duration::from_secs(1),
        "restarted after {elapsed:?}"
    );
    let Event::Restarted {
        instance,
        pid,
        reason,
        restarts,
        ..
    } = event
    else {
        unreachable!()
    };
    assert_eq!(instance, "victim-1");
    assert_ne!(pid, old);
    assert_eq!(restarts, 1);
    assert!(reason.contains("signal 9"), "{reason}");
    assert_eq!(fx.get("victim-1").pid, Some(pid));
}

#[test]
fn status_and_metrics_follow_the_filter() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "seen"]);
    fx.ok(&["start", "sleep 300", "--name", "unseen"]);
    let (port, key) = serve(&fx);
    let filter = Subscribe {
        apps: vec!["seen".into()],
        kinds: vec![EventKind::Metrics, EventKind::Status],
        lines: 0,
    };
    let mut socket = subscribed(port, &key, filter);
    let sampled = until(
        &mut socket,
        DEADLINE,
        |e| matches!(e, Event::Metrics { samples, .. } if !samples.is_empty()),
    );
    let Event::Metrics { samples, .. } = sampled else {
        unreachable!()
    };
    let names: Vec<&str> = samples.iter().map(|s| s.instance.as_str()).collect();
    assert_eq!(names, ["seen-0"]);
    assert!(samples[0].memory_bytes > 0);

    fx.ok(&["stop", "unseen"]);
    fx.ok(&["stop", "seen"]);
    let stopped = until(
        &mut socket,
        DEADLINE,
        |e| matches!(e, Event::Status { status, .. } if status.to_string() == "stopped"),
    );
    assert!(
        matches!(&stopped, Event::Status { instance, pid: None, .. } if instance == "seen-0"),
        "{stopped:?}"
    );
}

#[test]
fn log_lines_of_the_named_instance_are_streamed() {
    let fx = Fixture::new();
    let script = fx.script(
        "talk.sh",
        "echo before; while read -r line; do :; done; sleep 300",
    );
    let script = script.to_str().unwrap();
    fx.ok(&["start", script, "--name", "talker"]);
    fx.ok(&["start", "sh -c 'echo other; sleep 300'", "--name", "quiet"]);
    let (port, key) = serve(&fx);
    helper::wait_file(&fx.home().join("logs/talker-0-out.log"), |s| {
        s.contains("before")
    });
    let filter = Subscribe {
        apps: vec!["talker-0".into()],
        kinds: vec![EventKind::Log],
        lines: 5,
    };
    let mut socket = subscribed(port, &key, filter);
    let line = until(&mut socket, DEADLINE, |e| matches!(e, Event::Log(_)));
    let Event::Log(line) = line else {
        unreachable!()
    };
    assert_eq!(
        (line.instance.as_str(), line.line.as_str()),
        ("talker-0", "before")
    );
}

#[test]
fn the_key_is_required_first_or_in_a_header() {
    let fx = Fixture::new();
    let (port, key) = serve(&fx);
    let deadline = Instant::now() + DEADLINE;

    // A wrong key, or anything else first: told why, then closed.
    for first in [
        ClientMessage::Auth {
            key: "0".repeat(key.len()),
        },
        ClientMessage::Subscribe(Subscribe::default()),
    ] {
        let mut socket = connect(port, &[]).unwrap();
        say(&mut socket, &first);
        let refusal = next(&mut socket, deadline);
        assert!(matches!(refusal, Some(Event::Error { .. })), "{refusal:?}");
        assert_eq!(next(&mut socket, deadline), None);
    }

    // A wrong header: 401 before any upgrade.
    match connect(port, &[("X-API-Key", "wrong")]) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }

    // The right header: no key message needed.
    let bearer = format!("Bearer {key}");
    let mut socket = connect(port, &[("Authorization", &bearer)]).unwrap();
    let hello = next(&mut socket, deadline);
    assert!(matches!(hello, Some(Event::Hello { .. })), "{hello:?}");

    // A key in the URL is not a key.
    let url = format!("ws://127.0.0.1:{port}/ws?key={key}");
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (mut socket, _) = tungstenite::client(url.into_client_request().unwrap(), stream)
        .map_err(|_| ())
        .unwrap();
    say(&mut socket, &ClientMessage::Subscribe(Subscribe::default()));
    assert!(matches!(
        next(&mut socket, deadline),
        Some(Event::Error { .. })
    ));
}

/// The state of the daemon's end of the loopback connection from
/// `client_port` to `port`, as `/proc/net/tcp` shows it (`01` is
/// ESTABLISHED; once the daemon closed it, FIN_WAIT or later, even while
/// the client has not read what was sent before the close).
fn daemon_side(port: u16, client_port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let (local, remote) = (format!(":{port:04X}"), format!(":{client_port:04X}"));
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields[1].ends_with(&local) && fields[2].ends_with(&remote)).then(|| fields[3].to_string())
    })
}

#[test]
fn a_client_that_does_not_read_is_dropped_and_the_others_go_on() {
    let fx = Fixture::new();
    let chatty = fx.script(
        "chatty.py",
        "import time\nline = 'x' * 8000\nwhile True:\n    print(line, flush=True)\n    time.sleep(0.001)\n",
    );
    fx.ok(&[
        "start",
        chatty.to_str().unwrap(),
        "--name",
        "chatty",
        "--log-max-size",
        "1M",
    ]);
    fx.ok(&["start", "sleep 300", "--name", "calm"]);
    let (port, key) = serve(&fx);
    let logs = Subscribe {
        apps: vec!["chatty-0".into()],
        kinds: vec![EventKind::Log],
        lines: 0,
    };
    // This one reads one line, then never again.
    let mut slow = subscribed(port, &key, logs);
    until(&mut slow, DEADLINE, |e| matches!(e, Event::Log(_)));
    let local = slow.get_ref().local_addr().unwrap().port();
    let restarts = Subscribe {
        apps: vec!["calm".into()],
        kinds: vec![EventKind::Restarted],
        lines: 0,
    };
    let mut fast = subscribed(port, &key, restarts);

    let old = fx
        .wait_for("calm-0", "online", |p| p.pid.is_some())
        .pid
        .unwrap();
    let killed = Instant::now();
    kill(old, libc::SIGKILL);
    until(&mut fast, DEADLINE, |e| {
        matches!(e, Event::Restarted { .. })
    });
    assert!(
        killed.elapsed() < Duration::from_secs(1),
        "{:?}",
        killed.elapsed()
    );

    // The daemon gives up on the slow one (its frames waited too long).
    assert!(
        helper::wait_until(Duration::from_secs(30), || {
            daemon_side(port, local).is_none_or(|state| state != "01")
        }),
        "the daemon still serves the slow client"
    );
    fx.ok(&["list"]);
}

#[test]
fn stopping_the_web_api_closes_its_sockets() {
    let fx = Fixture::new();
    let (port, key) = serve(&fx);
    let mut socket = subscribed(port, &key, Subscribe::default());
    fx.ok(&["web", "--stop"]);
    let deadline = Instant::now() + DEADLINE;
    let farewell = next(&mut socket, deadline);
    assert!(
        matches!(farewell, Some(Event::Error { .. })),
        "{farewell:?}"
    );
    assert_eq!(next(&mut socket, deadline), None);
}
