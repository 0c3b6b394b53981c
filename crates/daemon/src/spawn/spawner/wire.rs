//! What the daemon tells the spawner: one request per process, and the
//! descriptors that go with it.
//!
//! A request is an 8-byte header (the payload's length and how many
//! descriptors ride along, little-endian `u32`s) followed by the payload:
//! NUL-terminated fields, since every one of them ends up as a C string of
//! `execve` (which is also why none may contain a NUL):
//!
//! ```text
//! slots \0 uid \0 gid \0 program \0 cwd \0 argc \0 arg… \0 NAME=value… \0
//! ```
//!
//! `slots` names the descriptors sent with the request, in this order: `o`
//! the write end of the stdout pipe, `e` of the stderr pipe, `l` the
//! listening socket (fd 3), `i` the Node IPC channel (fd 4). An empty uid
//! or gid means the daemon's own. The spawner answers twice with a
//! little-endian `i32`: the child's pid (or minus an errno when there is no
//! child), then, once the child has exec'd or failed to, 0 or its errno.

use std::ffi::CString;
use std::io;

/// The most a request may carry: far beyond what `execve` accepts
/// (`ARG_MAX`), so that only a broken daemon reaches it.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// Which descriptors a request carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Slots {
    /// The write end of the stdout pipe (else stdout is `/dev/null`).
    pub stdout: bool,
    /// The write end of the stderr pipe (else stderr is `/dev/null`).
    pub stderr: bool,
    /// The listening socket, for fd 3 (with `LISTEN_PID`).
    pub listen: bool,
    /// The Node IPC channel, for fd 4.
    pub ipc: bool,
}

impl Slots {
    /// How many descriptors ride along.
    pub fn count(self) -> usize {
        [self.stdout, self.stderr, self.listen, self.ipc]
            .into_iter()
            .filter(|slot| *slot)
            .count()
    }

    fn encode(self) -> Vec<u8> {
        [
            (self.stdout, b'o'),
            (self.stderr, b'e'),
            (self.listen, b'l'),
            (self.ipc, b'i'),
        ]
        .into_iter()
        .filter_map(|(on, letter)| on.then_some(letter))
        .collect()
    }

    fn decode(field: &[u8]) -> Option<Self> {
        let mut slots = Self::default();
        for letter in field {
            let slot = match letter {
                b'o' => &mut slots.stdout,
                b'e' => &mut slots.stderr,
                b'l' => &mut slots.listen,
                b'i' => &mut slots.ipc,
                _ => return None,
            };
            *slot = true;
        }
        Some(slots)
    }
}

/// One process to start, as the daemon describes it.
#[derive(Debug)]
pub struct Request<'a> {
    /// The absolute path of the program (also its `argv[0]`).
    pub program: &'a [u8],
    /// Its arguments after `argv[0]`.
    pub args: Vec<&'a [u8]>,
    /// Its environment, as `NAME=value` entries.
    pub env: Vec<Vec<u8>>,
    /// Its working directory.
    pub cwd: &'a [u8],
    /// The user and group it runs as, when not the daemon's.
    pub user: Option<(u32, u32)>,
    /// The descriptors sent with it.
    pub slots: Slots,
}

impl Request<'_> {
    /// The header and payload; refused when a field holds a NUL (std's
    /// `Command` refuses those the same way).
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let mut payload = Vec::with_capacity(
            256 + self.program.len()
                + self.args.iter().map(|a| a.len() + 1).sum::<usize>()
                + self.env.iter().map(|e| e.len() + 1).sum::<usize>(),
        );
        let mut field = |bytes: &[u8]| -> io::Result<()> {
            if bytes.contains(&0) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a NUL byte in the command",
                ));
            }
            payload.extend_from_slice(bytes);
            payload.push(0);
            Ok(())
        };
        field(&self.slots.encode())?;
        let (uid, gid) = self.user.map_or((String::new(), String::new()), |(u, g)| {
            (u.to_string(), g.to_string())
        });
        field(uid.as_bytes())?;
        field(gid.as_bytes())?;
        field(self.program)?;
        field(self.cwd)?;
        field(self.args.len().to_string().as_bytes())?;
        for arg in &self.args {
            field(arg)?;
        }
        for entry in &self.env {
            field(entry)?;
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the command and its environment are too long",
            ));
        }
        let mut message = Vec::with_capacity(8 + payload.len());
        message.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        message.extend_from_slice(&(self.slots.count() as u32).to_le_bytes());
        message.extend_from_slice(&payload);
        Ok(message)
    }
}

/// A request as the spawner reads it: C strings ready for `execve`.
#[derive(Debug)]
pub struct Decoded {
    /// The descriptors that came with it.
    pub slots: Slots,
    /// The user and group to switch to.
    pub user: Option<(u32, u32)>,
    /// The program.
    pub program: CString,
    /// The working directory.
    pub cwd: CString,
    /// `argv`, `argv[0]` (the program) included.
    pub argv: Vec<CString>,
    /// `envp`.
    pub env: Vec<CString>,
}

/// Reads a payload; `None` when it is not one [`Request::encode`] wrote.
pub fn decode(payload: &[u8]) -> Option<Decoded> {
    let body = payload.strip_suffix(&[0])?;
    let mut fields = body.split(|b| *b == 0);
    let slots = Slots::decode(fields.next()?)?;
    let id = |field: &[u8]| -> Option<Option<u32>> {
        if field.is_empty() {
            return Some(None);
        }
        std::str::from_utf8(field).ok()?.parse().ok().map(Some)
    };
    let uid = id(fields.next()?)?;
    let gid = id(fields.next()?)?;
    let user = match (uid, gid) {
        (Some(uid), Some(gid)) => Some((uid, gid)),
        (None, None) => None,
        _ => return None,
    };
    let cstring = |field: &[u8]| CString::new(field).ok();
    let program = cstring(fields.next()?)?;
    let cwd = cstring(fields.next()?)?;
    let argc: usize = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    // Not sized from argc: a broken count must not allocate.
    let mut argv = Vec::new();
    argv.push(program.clone());
    for _ in 0..argc {
        argv.push(cstring(fields.next()?)?);
    }
    let env = fields.map(cstring).collect::<Option<Vec<_>>>()?;
    Some(Decoded {
        slots,
        user,
        program,
        cwd,
        argv,
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request<'static> {
        Request {
            program: b"/bin/echo",
            args: vec![b"hello", b"", b"a=b"],
            env: vec![b"PATH=/bin".to_vec(), b"EMPTY=".to_vec()],
            cwd: b"/tmp",
            user: Some((1000, 100)),
            slots: Slots {
                stdout: true,
                stderr: false,
                listen: true,
                ipc: false,
            },
        }
    }

    #[test]
    fn a_request_reads_back_as_written() {
        let message = request().encode().unwrap();
        let length = u32::from_le_bytes(message[0..4].try_into().unwrap()) as usize;
        let fds = u32::from_le_bytes(message[4..8].try_into().unwrap());
        assert_eq!(length, message.len() - 8);
        assert_eq!(fds, 2);
        let decoded = decode(&message[8..]).unwrap();
        assert_eq!(decoded.slots, request().slots);
        assert_eq!(decoded.user, Some((1000, 100)));
        assert_eq!(decoded.program.as_bytes(), b"/bin/echo");
        assert_eq!(decoded.cwd.as_bytes(), b"/tmp");
        let argv: Vec<&[u8]> = decoded.argv.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(argv, [&b"/bin/echo"[..], b"hello", b"", b"a=b"]);
        let env: Vec<&[u8]> = decoded.env.iter().map(|e| e.as_bytes()).collect();
        assert_eq!(env, [&b"PATH=/bin"[..], b"EMPTY="]);
    }

    #[test]
    fn a_request_without_user_or_env_reads_back() {
        let mut plain = request();
        plain.user = None;
        plain.env.clear();
        plain.args.clear();
        let message = plain.encode().unwrap();
        let decoded = decode(&message[8..]).unwrap();
        assert_eq!(decoded.user, None);
        assert!(decoded.env.is_empty());
        assert_eq!(decoded.argv.len(), 1);
    }

    #[test]
    fn a_nul_byte_in_an_argument_is_refused_before_sending() {
        let mut bad = request();
        bad.args = vec![b"a\0b"];
        let err = bad.encode().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn foreign_payloads_are_not_read() {
        let payload = |fields: &[&str]| {
            let mut bytes = Vec::new();
            for field in fields {
                bytes.extend_from_slice(field.as_bytes());
                bytes.push(0);
            }
            bytes
        };
        assert!(decode(&payload(&["", "", "", "/bin/true", "/", "0"])).is_some());
        // An unknown slot, a uid without a gid, a bad count, too few
        // arguments, no final NUL.
        assert!(decode(&payload(&["x", "", "", "/bin/true", "/", "0"])).is_none());
        assert!(decode(&payload(&["", "1", "", "/bin/true", "/", "0"])).is_none());
        assert!(decode(&payload(&["", "", "", "/bin/true", "/", "zero"])).is_none());
        assert!(decode(&payload(&["", "", "", "/bin/true", "/", "2", "a"])).is_none());
        assert!(decode(b"\0\0\0/bin/true\0/\0").is_none());
        assert!(decode(b"").is_none());
    }
}
