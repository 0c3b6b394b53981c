//! Ecosystem files that used to hang, fail for no visible reason or pass
//! silently: endless JavaScript, JavaScript that prints, a byte-order mark,
//! repeated JSON keys, files and environments too large, a zero memory
//! limit.
#![allow(clippy::unwrap_used)]

mod helper;

use std::time::{Duration, Instant};

use helper::{need, Fixture};

#[test]
fn a_js_file_that_never_finishes_is_an_error_after_ten_seconds() {
    if !need("node", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("ecosystem.config.js"),
        "while (true) {}\nmodule.exports = { apps: [] };\n",
    )
    .unwrap();
    let began = Instant::now();
    let err = fx.fails(&["validate", "ecosystem.config.js"]);
    assert!(err.contains("did not finish evaluating"), "{err}");
    assert!(began.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_js_file_that_prints_and_keeps_a_timer_is_read() {
    if !need("node", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("ecosystem.config.js"),
        "console.log('[dotenv] injecting env (2) from .env');\n\
         setInterval(() => {}, 1000);\n\
         module.exports = { apps: [{ name: 'printed', script: 'sleep', args: ['300'] }] };\n",
    )
    .unwrap();
    let out = fx.ok(&["validate", "ecosystem.config.js"]);
    assert!(out.contains("printed"), "{out}");
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("eco.json"),
        "\u{feff}{\"name\": \"bom\", \"script\": \"sleep\", \"args\": [\"300\"]}",
    )
    .unwrap();
    fx.ok(&["validate", "eco.json"]);
}

#[test]
fn duplicate_json_keys_are_problems_with_their_lines() {
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("eco.json"),
        "{\"apps\": [{\n  \"name\": \"dup\",\n  \"script\": \"sleep\",\n  \"env\": {\"A\": \"1\"},\n  \"env\": {\"B\": \"2\"}\n}]}\n",
    )
    .unwrap();
    let err = fx.fails(&["validate", "eco.json"]);
    assert!(
        err.contains("eco.json:5:3") && err.contains("duplicate key 'env' (also at line 4)"),
        "{err}"
    );
    let err = fx.fails(&["start", "eco.json"]);
    assert!(err.contains("duplicate key 'env'"), "{err}");
    assert!(fx.list().is_empty());
}

#[test]
fn a_file_over_the_limit_is_refused_alike_by_validate_and_start() {
    let fx = Fixture::new();
    let padding = " ".repeat(2_500_000);
    std::fs::write(
        fx.work().join("eco.json"),
        format!("{{\"name\": \"huge\", \"script\": \"sleep\"{padding}}}"),
    )
    .unwrap();
    let validate = fx.fails(&["validate", "eco.json"]);
    let start = fx.fails(&["start", "eco.json"]);
    for err in [&validate, &start] {
        assert!(
            err.contains("may be at most 1048576 bytes (1 MiB)"),
            "{err}"
        );
    }
}

#[test]
fn a_zero_memory_limit_is_refused_in_files_and_on_the_command_line() {
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("eco.json"),
        r#"{"name": "zero", "script": "sleep", "max_memory_restart": 0}"#,
    )
    .unwrap();
    let err = fx.fails(&["validate", "eco.json"]);
    assert!(
        err.contains("field 'max_memory_restart'") && err.contains("0 would restart"),
        "{err}"
    );
    let err = fx.fails(&["start", "sleep 300", "--name", "zero", "--max-memory", "0"]);
    assert!(err.contains("invalid max_memory_restart"), "{err}");
    assert!(fx.list().is_empty());
}

#[test]
fn an_environment_over_the_limits_is_refused() {
    let fx = Fixture::new();
    let many: serde_json::Map<String, serde_json::Value> = (0..1001)
        .map(|i| (format!("V{i}"), serde_json::Value::from("x")))
        .collect();
    let large = serde_json::json!({"BIG": "x".repeat(300 * 1024)});
    std::fs::write(
        fx.work().join("eco.json"),
        serde_json::json!({"apps": [
            {"name": "many", "script": "sleep", "env": many},
            {"name": "large", "script": "sleep", "env": large},
        ]})
        .to_string(),
    )
    .unwrap();
    let err = fx.fails(&["validate", "eco.json"]);
    assert!(
        err.contains("1001 variables is more than an app may have (1000)"),
        "{err}"
    );
    assert!(err.contains("more than an app may have (256 KiB)"), "{err}");
}
