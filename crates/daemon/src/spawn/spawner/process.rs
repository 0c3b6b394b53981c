//! The spawner's own loop: read a request and its descriptors, `clone` a
//! child whose parent is the daemon, tell the daemon its pid, let it go,
//! and tell the daemon whether it exec'd.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use super::child::{Descriptors, Exec};
use super::wire::{self, MAX_PAYLOAD};

/// The lowest descriptor the spawner keeps anything on, so that the child
/// can put its own 0 to 4 in place without clobbering a source.
const HIGH: RawFd = 10;

/// Runs the spawner on `link` (its end of the socket pair with the daemon
/// `daemon`) until the daemon goes away. Called in the freshly forked
/// process, which has one thread.
pub fn serve(link: OwnedFd, daemon: i32) -> ! {
    // Never unwind into the daemon's code, of which this is a copy.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(link, daemon)));
    exit(1)
}

fn run(link: OwnedFd, daemon: i32) -> ! {
    let link = match settle(link, daemon) {
        Ok(link) => link,
        Err(_) => exit(1),
    };
    let null = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .and_then(|file| high(OwnedFd::from(file)))
    {
        Ok(null) => null,
        Err(_) => exit(1),
    };
    let mut link = UnixStream::from(link);
    loop {
        let Some((payload, fds)) = receive(&mut link) else {
            exit(0);
        };
        let (pid, exec) = start(&payload, fds, null.as_raw_fd(), link.as_raw_fd());
        if write_i32(&mut link, pid).is_err() {
            exit(0);
        }
        let Some(exec_link) = exec else {
            continue;
        };
        let status = release(exec_link);
        if write_i32(&mut link, status).is_err() {
            exit(0);
        }
    }
}

/// Cuts the spawner loose from the daemon's surroundings: dies with the
/// daemon, leaves the daemon's process group (a Ctrl-C meant for the
/// daemon is the daemon's to handle), names itself, and keeps only `link`
/// (moved high) and `/dev/null` on 0, 1 and 2.
fn settle(link: OwnedFd, daemon: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: prctl and getppid only concern this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != daemon {
            exit(0);
        }
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_NAME, crate::procinfo::SPAWNER_NAME.as_ptr());
    }
    retitle(b"pmdaemon spawner");
    let link = high(link)?;
    // SAFETY: close_range on descriptors no one else in this process uses:
    // everything but 0-2 and the link, which sits above them all.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3, link.as_raw_fd() - 1, 0);
        libc::syscall(
            libc::SYS_close_range,
            link.as_raw_fd() + 1,
            libc::c_uint::MAX,
            0,
        );
    }
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors of this process.
        unsafe { libc::dup2(null.as_raw_fd(), target) };
    }
    Ok(link)
}

/// Writes `title` over the command line this process inherited from the
/// daemon, so that `ps` and scripts looking for `pmdaemon daemon` do not
/// take the spawner for a second daemon. The arguments' memory is this
/// process's own copy, and nothing here reads them again.
fn retitle(title: &[u8]) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields 48 and 49 (arg_start, arg_end), counted after the comm field.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let bound = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<usize>().ok());
    let (Some(start), Some(end)) = (bound(48), bound(49)) else {
        return;
    };
    if end <= start {
        return;
    }
    let area = end - start;
    let len = title.len().min(area - 1);
    // SAFETY: [start, end) is this process's argument area (mapped and
    // writable: it sits on the initial stack), which no code of the
    // spawner reads.
    unsafe {
        let base = start as *mut u8;
        std::ptr::copy_nonoverlapping(title.as_ptr(), base, len);
        std::ptr::write_bytes(base.add(len), 0, area - len);
    }
}

/// One request: its payload and the descriptors that came with it (moved
/// above [`HIGH`]). `None` once the daemon is gone, or on anything that is
/// not a request (the daemon is then broken, and the spawner ends).
fn receive(link: &mut UnixStream) -> Option<(Vec<u8>, Vec<OwnedFd>)> {
    let mut header = [0u8; 8];
    let mut fds = Vec::new();
    let mut got = 0;
    let mut space = nix::cmsg_space!([RawFd; 4]);
    while got < header.len() {
        let mut iov = [std::io::IoSliceMut::new(&mut header[got..])];
        let message = recvmsg::<()>(
            link.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        );
        let message = match message {
            Ok(message) => message,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        };
        if message.bytes == 0 {
            return None;
        }
        got += message.bytes;
        for control in message.cmsgs().ok()? {
            if let ControlMessageOwned::ScmRights(received) = control {
                for fd in received {
                    // SAFETY: SCM_RIGHTS just gave us this descriptor.
                    fds.push(high(unsafe { OwnedFd::from_raw_fd(fd) }).ok()?);
                }
            }
        }
    }
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if length > MAX_PAYLOAD || count != fds.len() {
        return None;
    }
    let mut payload = vec![0u8; length];
    link.read_exact(&mut payload).ok()?;
    Some((payload, fds))
}

/// Clones the child of one request. Returns its pid (or minus an errno)
/// and, when there is a child, the spawner's end of the link to it.
fn start(
    payload: &[u8],
    fds: Vec<OwnedFd>,
    null: RawFd,
    daemon_link: RawFd,
) -> (i32, Option<UnixStream>) {
    let descriptors = Descriptors {
        null,
        sent: fds.iter().map(AsRawFd::as_raw_fd).collect(),
    };
    let Some(mut exec) = wire::decode(payload).and_then(|request| Exec::new(request, &descriptors))
    else {
        return (-libc::EINVAL, None);
    };
    let pair = UnixStream::pair().and_then(|(ours, theirs)| {
        let ours = high(OwnedFd::from(ours))?;
        let theirs = high(OwnedFd::from(theirs))?;
        Ok((ours, theirs))
    });
    let (ours, theirs) = match pair {
        Ok(pair) => pair,
        Err(err) => return (-err.raw_os_error().unwrap_or(libc::EIO), None),
    };
    // SAFETY: a raw clone with fork's semantics (a copy of this
    // one-threaded process) but the daemon as the child's parent. The child
    // only runs Exec::run, which makes plain system calls and never returns.
    let pid = unsafe { clone_for_daemon() };
    if pid == 0 {
        // SAFETY: we are that child.
        unsafe { exec.run(theirs.as_raw_fd(), [ours.as_raw_fd(), daemon_link]) }
    }
    if pid < 0 {
        return (-errno(), None);
    }
    drop(theirs);
    drop(fds);
    (pid as i32, Some(UnixStream::from(ours)))
}

/// `clone(CLONE_PARENT | SIGCHLD)` with no new stack: fork's semantics,
/// with the daemon as the child's parent.
///
/// # Safety
/// As `fork`: the child must only make plain system calls until it execs.
unsafe fn clone_for_daemon() -> libc::c_long {
    let flags = (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong;
    // s390x takes the stack first (CLONE_BACKWARDS2); the others the flags.
    #[cfg(target_arch = "s390x")]
    // SAFETY: as the function's contract.
    let pid = unsafe { libc::syscall(libc::SYS_clone, 0usize, flags, 0usize, 0usize, 0usize) };
    #[cfg(not(target_arch = "s390x"))]
    // SAFETY: as the function's contract.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    pid
}

/// Lets the child go and waits until it has exec'd (its end of the link
/// closes: 0) or failed (it writes its errno).
fn release(mut child: UnixStream) -> i32 {
    if child.write_all(b"g").is_err() {
        return libc::EIO;
    }
    let mut errno = [0u8; 4];
    let mut got = 0;
    while got < errno.len() {
        match child.read(&mut errno[got..]) {
            Ok(0) => break,
            Ok(read) => got += read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return libc::EIO,
        }
    }
    match got {
        0 => 0,
        4 => i32::from_le_bytes(errno),
        _ => libc::EIO,
    }
}

fn write_i32(link: &mut UnixStream, value: i32) -> std::io::Result<()> {
    link.write_all(&value.to_le_bytes())
}

/// `fd` moved to a descriptor at or above [`HIGH`], close-on-exec.
fn high(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    if fd.as_raw_fd() >= HIGH {
        return Ok(fd);
    }
    // SAFETY: fcntl duplicates a descriptor we own.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, HIGH) };
    if moved == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fcntl just returned this new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends this process without running the daemon's
    // destructors or atexit handlers, which are not the spawner's.
    unsafe { libc::_exit(code) }
}
