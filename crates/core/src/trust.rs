//! Whether a home, its socket, and the process behind the socket can be
//! trusted, checked as ssh checks `~/.ssh`: by the CLI before it sends
//! anything and by the daemon before it reads `state.json`. Both sides
//! use this one module.
//!
//! Someone who can write the home could plant a `state.json` whose apps
//! then run as us, or put their own socket in place of the daemon's and
//! receive our whole environment with the next `start`. So the home must
//! be a directory owned by us that neither group nor others can write, the
//! socket must be ours and writable by us alone, and the process listening
//! on it must run as our user (`SO_PEERCRED`).

use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::Uid;

use crate::files::FileError as Error;

fn untrusted(path: &Path, reason: String) -> Error {
    Error::Untrusted {
        path: path.to_path_buf(),
        reason,
    }
}

/// Checks that `path` (a home or a file in it) is owned by us and not
/// writable by group or others; a missing path is fine (we create it). A
/// home may be a symbolic link (to a data volume): what it points to is
/// checked; a socket is checked itself.
fn check_owned_private(
    path: &Path,
    what: &str,
    follow: bool,
) -> Result<Option<std::fs::Metadata>, Error> {
    let meta = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    let meta = match meta {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io("inspect", path, err)),
    };
    let me = Uid::effective().as_raw();
    if meta.uid() != me {
        return Err(untrusted(
            path,
            format!(
                "the {what} is owned by uid {}, not by you (uid {me}); use a home of your own (PMDAEMON_HOME) or chown it",
                meta.uid()
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(untrusted(
            path,
            format!(
                "the {what} is writable by {} (mode {mode:04o}); run `chmod go-w {}`",
                match mode & 0o022 {
                    0o020 => "its group",
                    0o002 => "others",
                    _ => "its group and others",
                },
                path.display()
            ),
        ));
    }
    Ok(Some(meta))
}

/// Refuses a home that is not a directory of ours, or that group or others
/// can write. A home that does not exist yet passes.
pub fn check_home(root: &Path) -> Result<(), Error> {
    match check_owned_private(root, "home", true)? {
        Some(meta) if !meta.is_dir() => Err(untrusted(root, "the home is not a directory".into())),
        _ => Ok(()),
    }
}

/// Refuses a socket file that is not a socket of ours, writable by us
/// alone. A missing socket passes (no daemon runs).
pub fn check_socket(path: &Path) -> Result<(), Error> {
    match check_owned_private(path, "socket", false)? {
        Some(meta) if !meta.file_type().is_socket() => {
            Err(untrusted(path, "it is not a socket".into()))
        }
        _ => Ok(()),
    }
}

/// Refuses a connection whose other end runs as another user.
pub fn check_peer(stream: &impl AsFd, path: &Path) -> Result<(), Error> {
    let credentials = getsockopt(stream, PeerCredentials)
        .map_err(|err| Error::io("read the credentials of", path, err.into()))?;
    let me = Uid::effective().as_raw();
    if credentials.uid() != me {
        return Err(untrusted(
            path,
            format!(
                "the process listening on it (pid {}) runs as uid {}, not as you (uid {me})",
                credentials.pid(),
                credentials.uid()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_home_writable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        check_home(dir.path()).unwrap();
        check_home(&dir.path().join("missing")).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_home(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("writable by its group and others (mode 0777)"),
            "{err}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        check_home(dir.path()).unwrap();
    }
}
