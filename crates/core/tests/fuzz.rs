//! Property tests (bounded fuzzing, run by `cargo test`): whatever bytes a
//! user or a client sends, the ecosystem parser and the API's request types
//! answer with a value or an error, never a panic.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use pmdaemon_core::api::{ApplyRequest, ReloadRequest, RestartRequest, ScaleRequest, StartRequest};
use pmdaemon_core::ecosystem::{parse, Format, Options};
use proptest::prelude::*;

fn options() -> Options {
    Options {
        profile: Some("production".into()),
        cpus: 4,
        source: None,
        env: [("HOME".to_string(), "/root".to_string())].into(),
    }
}

/// JSON values whose keys are mostly real field names, so that the parser
/// gets past "unknown field" and into every field's own checks.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    // Every field name, those of health_check, a few of the file's own,
    // and one that does not exist.
    let mut names: Vec<&'static str> = pmdaemon_core::ecosystem::FIELDS.to_vec();
    names.extend(pmdaemon_core::ecosystem::HEALTH_CHECK_FIELDS);
    names.extend(["apps", "env_production", "bogus"]);
    let keys = prop::sample::select(names);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,12}".prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "max",
            "-1",
            "3000",
            "3000-3003",
            "auto:3000-3100",
            "5s",
            "512M",
            "SIGTERM",
            "* * * * *",
            "node",
            "cluster",
            "proxy",
            "${HOME}",
            "${NOPE:?unset}",
        ])
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..8).prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn any_text_in_any_format_is_parsed_or_refused(text in "\\PC{0,300}") {
        for format in [Format::Json, Format::Yaml, Format::Toml] {
            let _ = parse("fuzz", Path::new("/srv"), &text, format, &options());
        }
    }

    #[test]
    fn any_json_shaped_like_an_ecosystem_is_parsed_or_refused(value in json_value()) {
        let text = value.to_string();
        if let Ok(loaded) = parse("fuzz", Path::new("/srv"), &text, Format::Json, &options()) {
            for app in loaded.apps {
                let _ = app.validate();
                let _ = app.sharing();
            }
        }
    }

    #[test]
    fn any_request_body_is_decoded_or_refused(body in prop::collection::vec(any::<u8>(), 0..256), value in json_value()) {
        let encoded = value.to_string();
        for bytes in [body.as_slice(), encoded.as_bytes()] {
            let _ = serde_json::from_slice::<StartRequest>(bytes).map(|r| r.config.validate());
            let _ = serde_json::from_slice::<ApplyRequest>(bytes);
            let _ = serde_json::from_slice::<ReloadRequest>(bytes);
            let _ = serde_json::from_slice::<RestartRequest>(bytes);
            let _ = serde_json::from_slice::<ScaleRequest>(bytes);
        }
    }
}
