//! `export`: the seed's example apps as Kubernetes manifests (checked by
//! kubernetes-validate), a Compose file (checked against the Compose spec's
//! JSON Schema by check-jsonschema, by `docker compose config` where Docker
//! has it, and by its structure) and systemd units (checked by
//! systemd-analyze verify).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helper;

use std::path::PathBuf;

use helper::{need, Fixture};
use serde_json::Value;

/// The seed's example apps (and the KromoSynth one), from examples/.
fn seed_apps() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed-apps.json")
}

#[test]
fn kubernetes_manifests_of_the_seeds_apps_validate() {
    let fx = Fixture::new();
    let file = seed_apps();
    let out = fx
        .command()
        .env("PMDAEMON_INSTANCES", "6")
        .args([
            "export",
            "kubernetes",
            file.to_str().unwrap(),
            "--image",
            "registry.example/app:1.2",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let manifests = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "replicas: 6",
        "memory: 512Mi",
        "livenessProbe:",
        "readinessProbe:",
        "path: /health",
        "terminationGracePeriodSeconds: 5",
        "image: registry.example/app:1.2",
        "kind: Service",
        "#   - app 'api-cluster': port 3000-3002 gives each instance its own port",
        "#   - app 'graceful-cluster': restart_delay",
    ] {
        assert!(
            manifests.contains(expected),
            "{expected} missing:\n{manifests}"
        );
    }
    // No daemon is needed to export.
    assert!(fx.daemon_pid().is_none());
    if !need("kubernetes-validate", &["--version"]) {
        return;
    }
    let path = fx.work().join("k8s.yaml");
    std::fs::write(&path, &manifests).unwrap();
    let check = std::process::Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout).to_string()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{said}\n{manifests}");
    assert_eq!(
        said.matches("passed").count(),
        7 + 6,
        "7 Deployments, 6 Services: {said}"
    );
}

#[test]
fn the_compose_file_is_well_formed() {
    let fx = Fixture::new();
    let file = seed_apps();
    let out = fx
        .command()
        .env_remove("PMDAEMON_INSTANCES")
        .args(["export", "compose", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let compose = String::from_utf8(out.stdout).unwrap();
    let path = fx.work().join("compose.yaml");
    std::fs::write(&path, &compose).unwrap();
    let docker_compose = std::process::Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if docker_compose {
        let check = std::process::Command::new("docker")
            .args(["compose", "-f"])
            .arg(&path)
            .args(["config", "--quiet"])
            .output()
            .unwrap();
        assert!(check.status.success(), "{check:?}\n{compose}");
    } else {
        eprintln!("docker compose is not available: the JSON Schema and the structure are checked");
    }
    // The Compose spec's schema, as check-jsonschema ships it (no network).
    if need("check-jsonschema", &["--version"]) {
        let check = std::process::Command::new("check-jsonschema")
            .args(["--builtin-schema", "vendor.compose-spec"])
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&check.stdout).to_string()
            + &String::from_utf8_lossy(&check.stderr);
        assert!(check.status.success(), "{said}\n{compose}");
    }
    let root: Value = serde_saphyr::from_str(&compose).unwrap();
    let top: Vec<&String> = root.as_object().unwrap().keys().collect();
    assert_eq!(top, ["services"], "{compose}");
    let services = root["services"].as_object().unwrap();
    assert_eq!(services.len(), 7, "{compose}");
    for (name, service) in services {
        let known = [
            "image",
            "command",
            "environment",
            "ports",
            "deploy",
            "healthcheck",
            "restart",
            "stop_signal",
            "stop_grace_period",
        ];
        for key in service.as_object().unwrap().keys() {
            assert!(known.contains(&key.as_str()), "{name}: {key}");
        }
        assert!(service["image"].is_string(), "{name}");
        assert!(
            service["command"]
                .as_array()
                .unwrap()
                .iter()
                .all(Value::is_string),
            "{name}"
        );
        assert!(
            service["deploy"]["replicas"].as_u64().unwrap() >= 1,
            "{name}"
        );
        assert!(
            ["no", "always", "on-failure", "unless-stopped"]
                .contains(&service["restart"].as_str().unwrap()),
            "{name}"
        );
        for value in service["environment"].as_object().unwrap().values() {
            assert!(value.is_string(), "{name}: environment values are strings");
        }
        if let Some(ports) = service.get("ports") {
            assert!(
                ports.as_array().unwrap().iter().all(Value::is_string),
                "{name}"
            );
        }
        if let Some(check) = service.get("healthcheck") {
            assert_eq!(check["test"][0], "CMD-SHELL", "{name}");
            assert!(check["interval"].as_str().unwrap().ends_with('s'), "{name}");
        }
    }
    let checked = &services["health-checked-cluster"];
    assert_eq!(checked["deploy"]["replicas"], 3);
    assert!(
        checked["healthcheck"]["test"][1]
            .as_str()
            .unwrap()
            .contains("http://localhost:5000/health"),
        "{compose}"
    );
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    assert_eq!(
        services["kromosynth-render"]["deploy"]["replicas"], cpus,
        "instances default to max"
    );
}

#[test]
fn systemd_template_units_pass_systemd_analyze_verify() {
    let fx = Fixture::new();
    let file = seed_apps();
    let dir = fx.work().join("units");
    let out = fx.ok(&[
        "export",
        "systemd",
        file.to_str().unwrap(),
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.lines().count(), 7, "{out}");
    let api = std::fs::read_to_string(dir.join("api-cluster@.service")).unwrap();
    assert!(api.contains("PORT=$$((3000 + %i))"), "{api}");
    assert!(api.contains("systemctl enable --now api-cluster@0 api-cluster@1 api-cluster@2"));
    if !need("systemd-analyze", &["--version"]) {
        return;
    }
    // A template is verified through one of its instances.
    let verify = fx.work().join("verify");
    std::fs::create_dir(&verify).unwrap();
    let mut instances = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .replace("@.", "@0.");
        let text = std::fs::read_to_string(&path).unwrap();
        // The programs the units run (node, python) need not be installed
        // here: systemd-analyze checks that ExecStart's program exists.
        let text = text
            .replace("ExecStart=node ", "ExecStart=/bin/sh ")
            .replace("ExecStart=python ", "ExecStart=/bin/sh ");
        std::fs::write(verify.join(&name), text).unwrap();
        instances.push(verify.join(name));
    }
    let check = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .args(&instances)
        .output()
        .unwrap();
    assert!(
        check.status.success() && check.stderr.is_empty(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
