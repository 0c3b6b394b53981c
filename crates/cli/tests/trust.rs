//! A home, a socket or a daemon that someone else controls is refused, as
//! ssh refuses a `~/.ssh` others can write. The tests run as root, so
//! "someone else" is uid 65534 (nobody).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helper;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use helper::{wait_file, Fixture};

const NOBODY: u32 = 65534;

fn running_as_root() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    if !root {
        eprintln!("SKIPPED: needs root to hand files to another user");
    }
    root
}

fn chmod(path: &std::path::Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_home_writable_by_others_is_refused_by_the_cli_and_the_daemon() {
    let fx = Fixture::new();
    chmod(fx.home(), 0o777);
    let err = fx.fails(&["list"]);
    assert!(
        err.contains("refusing to use")
            && err.contains("writable by its group and others (mode 0777)"),
        "{err}"
    );
    assert!(err.contains("chmod go-w"), "{err}");
    let err = fx.fails(&["daemon"]);
    assert!(err.contains("writable by its group and others"), "{err}");
    assert!(!fx.home().join("pmdaemon.sock").exists());
    assert!(!fx.home().join("state.json").exists());
    chmod(fx.home(), 0o700);
}

#[test]
fn a_home_owned_by_another_user_is_refused() {
    if !running_as_root() {
        return;
    }
    let fx = Fixture::new();
    std::os::unix::fs::chown(fx.home(), Some(NOBODY), Some(NOBODY)).unwrap();
    let err = fx.fails(&["start", "sleep 300", "--name", "planted"]);
    assert!(err.contains("owned by uid 65534, not by you"), "{err}");
    assert!(!fx.home().join("pmdaemon.sock").exists());
    std::os::unix::fs::chown(fx.home(), Some(0), Some(0)).unwrap();
}

#[test]
fn a_socket_served_by_another_user_gets_nothing() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    if !running_as_root() {
        return;
    }
    let fx = Fixture::new();
    // Bound by us, but listened on by nobody: the peer credentials a client
    // sees are those of the process that called listen(2).
    let socket = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::empty(),
        None,
    )
    .unwrap();
    let path = fx.home().join("pmdaemon.sock");
    nix::sys::socket::bind(
        socket.as_raw_fd(),
        &nix::sys::socket::UnixAddr::new(&path).unwrap(),
    )
    .unwrap();
    chmod(&path, 0o600);
    let fd = socket.as_raw_fd();
    let mut impostor = std::process::Command::new("sleep");
    impostor.arg("30");
    // SAFETY: plain system calls in the forked child.
    unsafe {
        impostor.pre_exec(move || {
            if libc::setgid(NOBODY) != 0 || libc::setuid(NOBODY) != 0 || libc::listen(fd, 16) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let impostor = helper::Guarded::new(impostor.spawn().unwrap(), helper::DEADLINE * 2);
    drop(socket);
    let err = fx.fails(&["start", "sleep 300", "--name", "secret", "--env", "TOKEN=x"]);
    assert!(
        err.contains(&format!(
            "the process listening on it (pid {}) runs as uid 65534",
            impostor.child.id()
        )),
        "{err}"
    );
}

#[test]
fn log_files_stay_private_in_a_home_created_0755() {
    let fx = Fixture::new();
    chmod(fx.home(), 0o755);
    fx.ok(&[
        "start",
        "sh -c 'echo hello; exec sleep 300'",
        "--name",
        "quiet",
    ]);
    let log = fx.home().join("logs/quiet-0-out.log");
    wait_file(&log, |text| text.contains("hello"));
    for path in [fx.home().join("logs"), log, fx.home().join("state.json")] {
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", path.display());
    }
}
