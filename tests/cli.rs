//! The command line: `check`, and start-up failures that must be fast and clear.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

fn sidecar(args: &[&str], config: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_respan-sidecar"))
        .args(args)
        .arg("--config")
        .arg(&path)
        .env_remove("RESPAN_SIDECAR_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn check_accepts_a_good_config() {
    let out = sidecar(&["check"], "providers:\n  e:\n    type: echo\n");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "config OK\n");
}

#[test]
fn check_lists_every_problem_with_its_path() {
    let out = sidecar(
        &["check"],
        "server:\n  listen: nope\nproviders:\n  a:\n    type: opanai\nroutes:\n  - match: x\n    provider: b\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.listen: `nope` is not an address"),
        "{err}"
    );
    assert!(
        err.contains("providers.a.type: unknown provider type `opanai`"),
        "{err}"
    );
    assert!(
        err.contains("routes[0].provider: no provider named `b`"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn check_names_unknown_keys() {
    let out = sidecar(
        &["check"],
        "servr:\n  listen: 127.0.0.1:1\nserver:\n  lisen: x\n  threads: 0\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // Every problem, the unknown keys included, each at its path.
    for problem in [
        "servr: unknown key",
        "server.lisen: unknown key",
        "server.threads: must be above 0",
    ] {
        assert!(err.contains(problem), "{problem} not in {err}");
    }
}

#[test]
fn the_default_config_checks() {
    let out = Command::new(env!("CARGO_BIN_EXE_respan-sidecar"))
        .arg("check")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RESPAN_SIDECAR_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_taken_port_fails_fast_and_clearly() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let started = Instant::now();
    let out = sidecar(
        &["run"],
        &format!("server:\n  listen: \"127.0.0.1:{port}\"\n  admin_listen: \"127.0.0.1:0\"\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("server.listen: cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}
