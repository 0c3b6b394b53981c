//! What `execve` needs, laid out before the fork (or the spawner's clone),
//! after which the child may not allocate. Both ways of spawning exec
//! through one [`Image`]: the program, its arguments and environment,
//! `LISTEN_PID` set to the child's own pid where fd 3 is a listening
//! socket (known only in the child), and `/bin/sh` for an executable file
//! without a format, as `execvp` does.

use std::ffi::{CStr, CString};

/// What starts the `LISTEN_PID` entry of an environment.
const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";

/// `LISTEN_PID=`, up to 10 digits and the NUL.
const LISTEN_PID_ENTRY: usize = LISTEN_PID_PREFIX.len() + 11;

/// The shell a file without a format runs under, as with `execvp`.
const SHELL: &CStr = c"/bin/sh";

/// A program ready to exec, its pointers into buffers it owns.
#[derive(Debug)]
pub struct Image {
    program: CString,
    _argv: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    envp: Vec<*const libc::c_char>,
    /// `LISTEN_PID=` and room for the digits (boxed: `envp` points into
    /// it, wherever the image moves).
    listen_pid: Option<Box<[u8; LISTEN_PID_ENTRY]>>,
    /// `argv` for `/bin/sh` running the program as a script.
    script_argv: Vec<*const libc::c_char>,
}

// SAFETY: the raw pointers point into heap buffers the image owns and
// never reallocates; they are only read in the child.
unsafe impl Send for Image {}
unsafe impl Sync for Image {}

impl Image {
    /// `argv` starts with `argv[0]`. With `listen_pid`, an entry of `env`
    /// for `LISTEN_PID` gives way to the child's own pid.
    pub fn new(program: CString, argv: Vec<CString>, env: Vec<CString>, listen_pid: bool) -> Self {
        let env: Vec<CString> = env
            .into_iter()
            .filter(|entry| !listen_pid || !entry.as_bytes().starts_with(LISTEN_PID_PREFIX))
            .collect();
        let listen_pid = listen_pid.then(|| {
            let mut entry = Box::new([0u8; LISTEN_PID_ENTRY]);
            entry[..LISTEN_PID_PREFIX.len()].copy_from_slice(LISTEN_PID_PREFIX);
            entry
        });
        let mut argv_pointers: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_pointers.push(std::ptr::null());
        let mut script_argv = vec![SHELL.as_ptr(), program.as_ptr()];
        script_argv.extend(argv_pointers.iter().skip(1));
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        envp.extend(listen_pid.as_ref().map(|entry| entry.as_ptr().cast()));
        envp.push(std::ptr::null());
        Self {
            program,
            _argv: argv,
            argv: argv_pointers,
            _env: env,
            envp,
            listen_pid,
            script_argv,
        }
    }

    /// In the child, whose pid is `pid`: execs the program (under
    /// `/bin/sh` if it has no format). Returns only on failure, with the
    /// errno (the shell's, when it was tried). No allocation.
    pub fn exec(&mut self, pid: u32) -> i32 {
        if let Some(entry) = &mut self.listen_pid {
            write_pid(entry, pid);
        }
        // SAFETY: every pointer points into buffers self owns, and each
        // array ends with a null.
        unsafe {
            libc::execve(
                self.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            );
            if errno() != libc::ENOEXEC {
                return errno();
            }
            libc::execve(
                SHELL.as_ptr(),
                self.script_argv.as_ptr(),
                self.envp.as_ptr(),
            );
        }
        errno()
    }
}

/// Writes `pid` in decimal, NUL-terminated, after the prefix of `entry`.
fn write_pid(entry: &mut [u8; LISTEN_PID_ENTRY], mut pid: u32) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (pid % 10) as u8;
        len += 1;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    let start = LISTEN_PID_PREFIX.len();
    for i in 0..len {
        entry[start + i] = digits[len - 1 - i];
    }
    entry[start + len] = 0;
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cstrings(items: &[&str]) -> Vec<CString> {
        items.iter().map(|s| CString::new(*s).unwrap()).collect()
    }

    #[test]
    fn listen_pid_replaces_the_environments_own_entry() {
        let mut image = Image::new(
            CString::new("/bin/true").unwrap(),
            cstrings(&["/bin/true"]),
            cstrings(&["A=1", "LISTEN_PID=1", "LISTEN_FDS=1"]),
            true,
        );
        assert_eq!(image._env, cstrings(&["A=1", "LISTEN_FDS=1"]));
        for pid in [0, 7, 4_294_967_295] {
            write_pid(image.listen_pid.as_mut().unwrap(), pid);
            // SAFETY: the second-to-last envp entry is the boxed entry.
            let entry = unsafe { CStr::from_ptr(image.envp[image.envp.len() - 2]) };
            assert_eq!(entry.to_str().unwrap(), format!("LISTEN_PID={pid}"));
        }
        assert!(image.envp.last().unwrap().is_null());
    }

    #[test]
    fn without_a_socket_the_environment_is_kept_whole() {
        let image = Image::new(
            CString::new("/bin/true").unwrap(),
            cstrings(&["/bin/true", "a"]),
            cstrings(&["LISTEN_PID=1"]),
            false,
        );
        assert_eq!(image.envp.len(), 2);
        assert_eq!(image.script_argv.len(), 4);
    }
}
