//! Bad input gets one clear sentence, exit code 1, and changes nothing.

mod helper;

use helper::Fixture;

#[test]
fn a_bad_command_is_refused_and_nothing_is_registered() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "keep"]);
    let before = fx.list();
    std::fs::create_dir(fx.work().join("adir")).unwrap();
    std::fs::write(fx.work().join("plain"), "echo hi").unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["start", "./missing-program"], "does not exist"),
        (&["start", "no-such-program-anywhere --flag"], "not on PATH"),
        (&["start", "./adir", "--name", "d"], "is a directory"),
        (&["start", "./plain", "--name", "p"], "is not executable"),
        (&["start", "missing.py"], "does not exist"),
        (&["start", "sleep 1", "--cwd", "nowhere"], "does not exist"),
    ];
    for (args, message) in cases {
        let err = fx.fails(args);
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line, not a dump: {err}");
        assert!(err.starts_with("error: "), "{err}");
    }
    // Paths in errors are shown as a user reads them.
    let err = fx.fails(&["start", "./sub/../nosuch.py"]);
    let expected = format!(
        "script {} does not exist",
        fx.work().join("nosuch.py").display()
    );
    assert!(err.contains(&expected), "{err}");
    let shape = |list: Vec<pmdaemon_core::api::ProcessInfo>| {
        list.into_iter()
            .map(|p| (p.id, p.name, p.status, p.pid, p.restarts))
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(fx.list()), shape(before));
    // No log file of a refused app was created: only keep's.
    let logs: Vec<String> = std::fs::read_dir(fx.home().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        logs.iter().all(|name| name.starts_with("keep-0-")),
        "{logs:?}"
    );
}

#[test]
fn an_unknown_target_is_one_line_exit_1_and_changes_nothing() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "web"]);
    let pid = fx.get("web-0").pid;
    for verb in ["stop", "restart", "delete", "info", "logs"] {
        for target in ["nope", "99", "we b"] {
            let err = fx.fails(&[verb, target]);
            assert_eq!(
                err.trim(),
                format!("error: no process or app named '{target}' (see `pmdaemon list`)")
            );
        }
        // A near miss names what was probably meant.
        for (target, meant) in [("web-7", "web-0"), ("wbe", "web"), ("we", "web")] {
            let err = fx.fails(&[verb, target]);
            assert_eq!(
                err.trim(),
                format!("error: no process or app named '{target}' (did you mean '{meant}'?)")
            );
        }
    }
    let web = fx.get("web-0");
    assert_eq!((web.pid, web.restarts), (pid, 0));
}

#[test]
fn duplicate_names_and_bad_values_are_refused() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "web"]);
    for (args, error) in [
        (&["sleep 300", "--name", "web"][..], "already exists"),
        (&["sleep 300", "--name", "web-0"], "already exists"),
        (&["sleep 300", "--name", "all"], "invalid app name"),
        (
            &["sleep 300", "--name", "x", "--kill-timeout", "soon"],
            "invalid duration",
        ),
        (
            &["sleep 300", "--name", "x", "--stop-signal", "SIGNOPE"],
            "unknown signal",
        ),
        (&["echo 'unbalanced", "--name", "x"], "invalid command line"),
        (
            &[
                "sleep 300",
                "--name",
                "x",
                "--health-check-url",
                "http://127.0.0.1:1/",
                "--health-check-retries",
                "0",
            ],
            "invalid health_check: retries must be at least 1",
        ),
    ] {
        let err = fx.fails(&[&["start"][..], args].concat());
        assert!(err.contains(error), "start {args:?}: {err}");
    }
    assert_eq!(fx.list().len(), 1);
}

#[test]
fn a_malformed_api_request_is_refused_and_changes_nothing() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "web"]);
    let before = fx.get("web-0");
    let post = |path: &str, body: &str| {
        helper::raw_request(
            &fx,
            "POST",
            path,
            "Content-Type: application/json\r\n",
            body,
        )
    };
    let answer = post("/api/processes/web/restart", "{\"port\": ");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("bad restart request"), "{answer}");
    let answer = post("/api/processes/web/restart", r#"{"prot": "4000"}"#);
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("unknown field `prot`"),
        "{answer}"
    );
    let answer = post("/api/processes", r#"{"config": {"name": 3}}"#);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    let answer = post("/api/processes/web/scale", r#"{"instances": -2}"#);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    // An environment execve cannot pass is refused before it is saved: the
    // app still restarts afterwards (it once failed every start after).
    let answer = post(
        "/api/processes/web/restart",
        r#"{"env": {"K\u0000q": "v"}}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    assert!(answer.contains("holds a NUL byte"), "{answer}");
    let answer = post(
        "/api/processes",
        r#"{"config": {"name": "nul", "script": "sleep", "args": ["300"]}, "inherited_env": {"A=B": "x"}}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    assert!(answer.contains("holds '='"), "{answer}");
    let after = fx.get("web-0");
    assert_eq!((after.pid, after.restarts), (before.pid, 0));
    assert_eq!(fx.list().len(), 1);
    fx.ok(&["restart", "web"]);
    assert_eq!(fx.get("web-0").restarts, 1);
}

#[test]
fn a_bad_flag_does_not_even_start_the_daemon() {
    let fx = Fixture::new();
    let err = fx.fails(&["start", "sleep 300", "--kill-timeout", "soon"]);
    assert!(err.contains("invalid duration"), "{err}");
    assert!(fx.daemon_pid().is_none());
    assert!(!fx.home().join("pmdaemon.sock").exists());
}

#[test]
fn json_is_offered_by_validate_flush_and_kill_and_errors_follow_it() {
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("good.json"),
        r#"{"name": "api", "script": "sleep", "args": "300", "instances": 2}"#,
    )
    .unwrap();
    let valid: serde_json::Value =
        serde_json::from_str(&fx.ok(&["validate", "good.json", "--json"])).unwrap();
    assert_eq!(valid["valid"], true);
    assert_eq!(valid["apps"][0]["name"], "api");
    assert_eq!(valid["apps"][0]["instances"], 2);
    std::fs::write(
        fx.work().join("bad.json"),
        "{\n  \"name\": \"api\",\n  \"script\": \"sleep\",\n  \"instnaces\": 2\n}\n",
    )
    .unwrap();
    let output = fx.output(&["validate", "bad.json", "--json"]);
    assert!(!output.status.success());
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    assert!(error["error"].as_str().unwrap().contains("1 problem"));
    assert_eq!(error["problems"][0]["field"], "instnaces");
    assert_eq!(error["problems"][0]["line"], 4);
    // Any verb's error, when --json is asked for.
    let output = fx.output(&["info", "nope", "--json"]);
    let error: serde_json::Value = serde_json::from_slice(&output.stderr).unwrap();
    assert!(error["error"]
        .as_str()
        .unwrap()
        .contains("no process or app named 'nope'"));

    fx.ok(&[
        "start",
        "sh",
        "--name",
        "talker",
        "--",
        "-c",
        "echo hi; exec sleep 300",
    ]);
    let flushed: serde_json::Value =
        serde_json::from_str(&fx.ok(&["flush", "talker", "--json"])).unwrap();
    assert_eq!(flushed["files"].as_array().unwrap().len(), 2);
    let killed: serde_json::Value = serde_json::from_str(&fx.ok(&["kill", "--json"])).unwrap();
    assert_eq!(killed["stopped"][0], "talker-0");
    let none: serde_json::Value = serde_json::from_str(&fx.ok(&["kill", "--json"])).unwrap();
    assert_eq!(none["running"], false);
}
