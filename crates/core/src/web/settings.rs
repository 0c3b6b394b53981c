//! `web.json` and the key file: what makes the web API outlive the daemon.

use std::fs;
use std::path::Path;

use super::{check_key, WebSettings};
use crate::files::{write_atomic, FileError as Error};
use crate::home::Home;

/// The saved setting; `None` when the web API is off. A file that cannot be
/// read or understood keeps the API off (and says why): it never opens a
/// door nobody asked for.
pub fn load(home: &Home) -> Result<Option<WebSettings>, Error> {
    let path = home.web_file();
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io("read", path, err)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|err| Error::Invalid {
            reason: format!("not a valid web setting: {err}"),
            path,
        })
}

/// Saves the setting atomically.
pub fn save(home: &Home, settings: &WebSettings) -> Result<(), Error> {
    let path = home.web_file();
    let bytes = serde_json::to_vec_pretty(settings)
        .map_err(|err| Error::io("serialize", &path, std::io::Error::other(err)))?;
    write_atomic(&path, &bytes)
}

/// Forgets the setting (the API stays off from now on).
pub fn remove(home: &Home) -> Result<(), Error> {
    let path = home.web_file();
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::io("remove", path, err)),
    }
}

/// The key a file holds, without surrounding whitespace.
pub fn read_key(path: &Path) -> Result<String, Error> {
    let text =
        fs::read_to_string(path).map_err(|err| Error::io("read the API key from", path, err))?;
    let key = text.trim().to_string();
    check_key(&key).map_err(|reason| Error::Invalid {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::{KeySource, DEFAULT_HOST, DEFAULT_PORT};

    #[test]
    fn the_setting_round_trips_and_removing_it_turns_the_api_off() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        assert_eq!(load(&home).unwrap(), None);
        let settings = WebSettings {
            host: DEFAULT_HOST,
            port: DEFAULT_PORT,
            key_file: home.api_key_file(),
            key_source: KeySource::Generated,
        };
        save(&home, &settings).unwrap();
        assert_eq!(load(&home).unwrap(), Some(settings));
        remove(&home).unwrap();
        assert_eq!(load(&home).unwrap(), None);
    }

    #[test]
    fn a_key_file_is_trimmed_and_a_short_key_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        fs::write(&path, "0123456789abcdef0123\n").unwrap();
        assert_eq!(read_key(&path).unwrap(), "0123456789abcdef0123");
        fs::write(&path, "short\n").unwrap();
        assert!(read_key(&path)
            .unwrap_err()
            .to_string()
            .contains("too short"));
    }
}
