use super::*;

#[test]
fn names_that_would_clash_with_targets_are_refused() {
    assert!(validate_name("web").is_ok());
    assert!(validate_name("api.v2_blue-1").is_ok());
    for bad in ["", "all", "42", "a/b", "has space", ".hidden", "-x"] {
        assert!(validate_name(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn signals_by_name_short_name_or_number() {
    assert_eq!(signal_number("SIGTERM"), Ok(15));
    assert_eq!(signal_number("int"), Ok(2));
    assert_eq!(signal_number("9"), Ok(9));
    assert!(signal_number("SIGFOO").is_err());
    assert!(signal_number("99").is_err());
    // Beyond the few a hand-written table would hold, numbered as this
    // system numbers them.
    assert_eq!(
        signal_number("SIGPWR"),
        Ok(nix::sys::signal::Signal::SIGPWR as i32)
    );
    assert_eq!(
        signal_number("sigtstp"),
        Ok(nix::sys::signal::Signal::SIGTSTP as i32)
    );
    assert_eq!(
        signal_number("SIGXCPU"),
        Ok(nix::sys::signal::Signal::SIGXCPU as i32)
    );
}

#[test]
fn ports_must_fit_the_instances() {
    let fits = |spec: &str, n| check_ports_fit(&spec.parse().unwrap(), n);
    assert!(fits("3000", 1).is_ok());
    assert!(fits("3000-3003", 4).is_ok());
    assert!(fits("auto:3000-3003", 4).is_ok());
    // One port with several instances is a shared-port cluster.
    assert!(fits("3000", 4).is_ok());
    let small = fits("3000-3002", 4).unwrap_err().to_string();
    assert!(
        small.contains("3000-3002 has 3 ports for 4 instances"),
        "{small}"
    );
    assert!(fits("auto:1-2", 3).is_err());
}

#[test]
fn a_single_port_is_shared_by_clusters_and_the_mode_follows_the_program() {
    let app = |script: &str, instances, exec_mode, shared_port| AppConfig {
        script: script.into(),
        instances,
        exec_mode,
        shared_port,
        port: Some("3000".parse().unwrap()),
        ..AppConfig::default()
    };
    use ExecMode::{Cluster, Fork};
    use SharedPort::{Auto, Proxy, Socket};
    assert_eq!(app("server.js", 1, Fork, Auto).sharing(), None);
    assert_eq!(
        app("server.js", 4, Fork, Auto).sharing(),
        Some((3000, Socket))
    );
    assert_eq!(app("node", 2, Fork, Auto).sharing(), Some((3000, Socket)));
    assert_eq!(
        app("server.js", 1, Cluster, Auto).sharing(),
        Some((3000, Socket))
    );
    assert_eq!(app("app.py", 4, Fork, Auto).sharing(), Some((3000, Proxy)));
    assert_eq!(
        app("./api", 1, Fork, Socket).sharing(),
        Some((3000, Socket))
    );
    assert_eq!(
        app("server.js", 3, Fork, Proxy).sharing(),
        Some((3000, Proxy))
    );
    let ranged = AppConfig {
        port: Some("3000-3003".parse().unwrap()),
        ..app("server.js", 4, Cluster, Auto)
    };
    assert_eq!(ranged.sharing(), None);
    assert!("sockets"
        .parse::<SharedPort>()
        .unwrap_err()
        .contains("auto, socket or proxy"));
}

#[test]
fn pm2_date_formats_become_strftime() {
    assert_eq!(
        date_format("YYYY-MM-DD HH:mm:ss").unwrap(),
        "%Y-%m-%d %H:%M:%S"
    );
    assert_eq!(
        date_format("YYYY-MM-DDTHH:mm:ss.SSS Z").unwrap(),
        "%Y-%m-%dT%H:%M:%S.%3f %:z"
    );
    assert_eq!(date_format("%H:%M").unwrap(), "%H:%M");
    assert!(date_format("%Q bad").is_err());
}

#[test]
fn cron_expressions_with_or_without_seconds() {
    assert!(parse_cron("0 3 * * *").is_ok());
    assert!(parse_cron("* * * * * *").is_ok());
    let err = parse_cron("every day").unwrap_err().to_string();
    assert!(err.starts_with("invalid cron_restart 'every day'"), "{err}");
}

#[test]
fn defaults_are_pm2s() {
    let config = AppConfig::default();
    assert_eq!(config.max_restarts, 16);
    assert_eq!(config.min_uptime, 1000);
    assert_eq!(config.kill_timeout, 1600);
    assert!(config.autorestart);
    assert_eq!(config.instance_name(2), "-2");
}

#[test]
fn a_namespace_obeys_the_rules_of_names() {
    let app = |namespace: &str| AppConfig {
        name: "web".into(),
        script: "server.py".into(),
        namespace: Some(namespace.into()),
        ..AppConfig::default()
    };
    app("team-a").validate().unwrap();
    let err = app("team/a").validate().unwrap_err().to_string();
    assert!(
        err.starts_with("invalid namespace: 'team/a': use letters"),
        "{err}"
    );
    assert!(app("all").validate().is_err());
}
