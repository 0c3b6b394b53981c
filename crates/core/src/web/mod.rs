//! The web API's setting (`pmdaemon web`): where the daemon serves its API
//! on TCP and which key guards it. Kept in `$PMDAEMON_HOME/web.json` so that
//! it outlives the daemon, and carried by the socket-only `/api/web` route.
//!
//! The rule that matters is in [`WebSettings::check`]: a key is always
//! configured, and reads are open without it only on a loopback address
//! with a key pmdaemon generated (the user gave none).

pub mod settings;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `GET|POST|DELETE` on the Unix socket only: the web setting.
pub const WEB_ROUTE: &str = "/api/web";
/// `GET` on TCP: the daemon answers, nothing more.
pub const HEALTH_ROUTE: &str = "/health";

/// The live events (WebSocket, see [`crate::api::Event`]), on both doors.
pub const WS_ROUTE: &str = "/ws";

/// The OpenAPI document of the API, on both doors.
pub const OPENAPI_ROUTE: &str = "/openapi.json";
/// The default address (the seed's `curl http://localhost:9615/…`).
pub const DEFAULT_HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The default port.
pub const DEFAULT_PORT: u16 = 9615;
/// The fewest characters a key the user gives may have.
pub const MIN_KEY_LEN: usize = 16;

/// Where the API key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// pmdaemon generated it (the user gave none): on a loopback address,
    /// read-only listings are open and only the rest needs it.
    Generated,
    /// The user gave it (`--api-key` or `--api-key-file`): every route but
    /// `/health` needs it.
    Given,
}

/// `web.json`, and the body of `POST /api/web`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    /// The address to listen on.
    pub host: IpAddr,
    /// The port.
    pub port: u16,
    /// The file holding the key (read by the daemon when it starts serving;
    /// surrounding whitespace ignored).
    pub key_file: PathBuf,
    /// Who chose the key.
    pub key_source: KeySource,
}

impl WebSettings {
    /// Refuses what would expose the API: a non-loopback address guarded
    /// only by a generated key the user may not know exists.
    pub fn check(&self) -> Result<(), String> {
        if !self.host.is_loopback() && self.key_source != KeySource::Given {
            return Err(format!(
                "refusing to serve the API on {} without an API key: give --api-key KEY or --api-key-file PATH (or keep the default --host 127.0.0.1)",
                self.host
            ));
        }
        Ok(())
    }

    /// Whether read-only listings are served without the key.
    pub fn open_reads(&self) -> bool {
        self.host.is_loopback() && self.key_source == KeySource::Generated
    }

    /// The main address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

/// Checks a key the user gives; the reason when it is unusable.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.chars().count() < MIN_KEY_LEN {
        return Err(format!(
            "the API key is too short: use at least {MIN_KEY_LEN} characters"
        ));
    }
    if !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(
            "the API key may only hold printable ASCII characters without spaces (it travels in an HTTP header)".into(),
        );
    }
    Ok(())
}

/// Response of `/api/web`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebStatus {
    /// The setting, when the web API is on.
    pub settings: Option<WebSettings>,
    /// The addresses listened on now (`127.0.0.1:9615`, `[::1]:9615`).
    pub listening: Vec<SocketAddr>,
    /// Why it is on but not listening.
    pub error: Option<String>,
}

impl fmt::Display for WebStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(settings) = &self.settings else {
            return f.write_str("the web API is off");
        };
        if let Some(error) = &self.error {
            return write!(
                f,
                "the web API is set to {} but not listening: {error}",
                settings.addr()
            );
        }
        let addrs: Vec<String> = self.listening.iter().map(ToString::to_string).collect();
        write!(
            f,
            "the web API listens on http://{} ({}); key in {}; {}",
            settings.addr(),
            addrs.join(", "),
            settings.key_file.display(),
            if settings.open_reads() {
                "read-only listings open, everything else needs the key"
            } else {
                "every route but /health needs the key"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(host: &str, key_source: KeySource) -> WebSettings {
        WebSettings {
            host: host.parse().unwrap(),
            port: DEFAULT_PORT,
            key_file: "/k".into(),
            key_source,
        }
    }

    #[test]
    fn a_non_loopback_address_needs_a_given_key() {
        assert!(settings("0.0.0.0", KeySource::Generated).check().is_err());
        assert!(settings("::", KeySource::Generated).check().is_err());
        assert!(settings("192.168.1.5", KeySource::Given).check().is_ok());
        assert!(settings("127.0.0.1", KeySource::Generated).check().is_ok());
        assert!(settings("::1", KeySource::Generated).check().is_ok());
    }

    #[test]
    fn reads_are_open_only_on_loopback_with_a_generated_key() {
        assert!(settings("127.0.0.1", KeySource::Generated).open_reads());
        assert!(!settings("127.0.0.1", KeySource::Given).open_reads());
        assert!(!settings("10.0.0.1", KeySource::Given).open_reads());
    }

    #[test]
    fn short_or_spaced_keys_are_refused() {
        assert!(check_key("short").is_err());
        assert!(check_key("a key with spaces in it").is_err());
        assert!(check_key("0123456789abcdef").is_ok());
    }
}
