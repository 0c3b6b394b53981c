//! Giving instances their ports: the i-th port of a range, or the first
//! ports of an `auto:` range that are free on the system (a real bind test)
//! and not held by another app.

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

use pmdaemon_core::ports::PortSpec;

use crate::Error;

/// Who holds a port: the app and instance names.
pub type Holders = HashMap<u16, (String, String)>;

/// Whether nothing on this machine listens on `port` (IPv4 or IPv6).
pub fn is_free(port: u16) -> bool {
    if TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_err() {
        return false;
    }
    match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)) {
        Ok(_) => true,
        // No IPv6 on this machine: nothing can listen there either.
        Err(err) => err.kind() != std::io::ErrorKind::AddrInUse,
    }
}

/// Ports for the instances with `indices` of an app using `spec`.
/// `held` are ports of other apps; `own` are ports this app's other
/// instances keep. With `check_system`, a port some other program listens on
/// is refused (or, for `auto:`, skipped).
pub fn allocate(
    spec: &PortSpec,
    indices: &[u32],
    held: &Holders,
    own: &BTreeSet<u16>,
    check_system: bool,
) -> Result<Vec<u16>, Error> {
    let usable = |port: u16| -> Result<(), Error> {
        if let Some((app, instance)) = held.get(&port) {
            return Err(Error::PortInUse {
                port,
                holder: format!("app '{app}' ({instance})"),
            });
        }
        if check_system && !own.contains(&port) && !is_free(port) {
            return Err(Error::PortInUse {
                port,
                holder: "another program on this machine".to_string(),
            });
        }
        Ok(())
    };
    match *spec {
        PortSpec::Single(port) => indices
            .iter()
            .map(|_| usable(port).map(|()| port))
            .collect(),
        PortSpec::Range { start, end } => indices
            .iter()
            .map(|index| {
                let port = u32::from(start) + index;
                if port > u32::from(end) {
                    return Err(Error::NoPorts(format!(
                        "port range {start}-{end} has room for {} instances, not {}",
                        spec.capacity(),
                        index + 1
                    )));
                }
                let port = port as u16;
                usable(port).map(|()| port)
            })
            .collect(),
        PortSpec::Auto { start, end } => {
            let free: Vec<u16> = (start..=end)
                .filter(|port| !own.contains(port) && usable(*port).is_ok())
                .take(indices.len())
                .collect();
            if free.len() < indices.len() {
                return Err(Error::NoPorts(format!(
                    "auto:{start}-{end} has only {} free ports left for {} instances",
                    free.len(),
                    indices.len()
                )));
            }
            Ok(free)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> PortSpec {
        text.parse().unwrap()
    }

    /// A run of `n` consecutive ports nobody listens on.
    fn free_run(n: u16) -> u16 {
        (0..200)
            .map(|i| 20_000 + (std::process::id() as u16 % 20_000) + i * 97)
            .find(|base| (*base..*base + n).all(is_free))
            .unwrap()
    }

    #[test]
    fn a_range_gives_instance_i_the_ith_port() {
        let base = free_run(4);
        let range = spec(&format!("{base}-{}", base + 3));
        let ports = allocate(
            &range,
            &[0, 1, 2, 3],
            &Holders::new(),
            &BTreeSet::new(),
            true,
        )
        .unwrap();
        assert_eq!(ports, [base, base + 1, base + 2, base + 3]);
        let scaled = allocate(&range, &[2, 3], &Holders::new(), &BTreeSet::new(), true).unwrap();
        assert_eq!(scaled, [base + 2, base + 3]);
        let err = allocate(&range, &[4], &Holders::new(), &BTreeSet::new(), true).unwrap_err();
        assert!(err.to_string().contains("room for 4 instances"), "{err}");
    }

    #[test]
    fn a_port_of_another_app_is_refused_naming_it() {
        let base = free_run(2);
        let held: Holders = [(base + 1, ("api".to_string(), "api-1".to_string()))].into();
        let err = allocate(
            &spec(&format!("{base}-{}", base + 1)),
            &[0, 1],
            &held,
            &BTreeSet::new(),
            true,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            format!("port {} is already used by app 'api' (api-1)", base + 1)
        );
    }

    #[test]
    fn auto_skips_ports_held_by_apps_outside_listeners_and_itself() {
        let base = free_run(8);
        let outside = TcpListener::bind(("127.0.0.1", base + 1)).unwrap();
        let held: Holders = [(base + 2, ("api".to_string(), "api-0".to_string()))].into();
        let own: BTreeSet<u16> = [base].into();
        let auto = spec(&format!("auto:{base}-{}", base + 7));
        let ports = allocate(&auto, &[1, 2], &held, &own, true).unwrap();
        assert_eq!(ports, [base + 3, base + 4]);
        let err = allocate(&auto, &[0, 1, 2, 3, 4, 5], &held, &own, true).unwrap_err();
        assert!(err.to_string().contains("only 5 free ports"), "{err}");
        drop(outside);
    }

    #[test]
    fn an_explicit_port_some_program_listens_on_is_refused() {
        let listener = TcpListener::bind(("0.0.0.0", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!is_free(port));
        let err = allocate(
            &PortSpec::Single(port),
            &[0],
            &Holders::new(),
            &BTreeSet::new(),
            true,
        )
        .unwrap_err();
        assert!(err.to_string().contains("another program"), "{err}");
        assert!(allocate(
            &PortSpec::Single(port),
            &[0],
            &Holders::new(),
            &BTreeSet::new(),
            false
        )
        .is_ok());
    }
}
