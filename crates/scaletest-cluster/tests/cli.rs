//! Bad input gets one clear line naming the fix, and nothing starts.

use std::net::TcpListener;
use std::process::{Command, Output};

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_scaletest-cluster"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.path())
        .envs(envs.iter().copied())
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no error printed");
    lines[0].to_string()
}

#[test]
fn a_bad_flag_value_lists_the_choices() {
    let out = run(&["--scheduler", "nope"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let line = one_error_line(&out);
    assert!(line.contains("invalid value 'nope' for '--scheduler"), "{line}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("kube-scheduler, pod-shim"));
}

#[test]
fn a_missing_upstream_binary_says_how_to_build_it() {
    let empty = tempfile::tempdir().unwrap();
    let out = run(&["--bin-dir", "/nonexistent/bin"], &[("PATH", empty.path().to_str().unwrap())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let line = one_error_line(&out);
    assert!(line.contains("kine not found in /nonexistent/bin or on PATH"), "{line}");
    assert!(line.contains("run `make upstream`"), "{line}");
}

#[test]
fn a_busy_port_is_named_with_the_fix() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let out = run(&["--port-base", &port], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let line = one_error_line(&out);
    assert!(line.contains(&format!("port {port} (kube-apiserver) is busy")), "{line}");
    assert!(line.contains("choose another --port-base"), "{line}");
}
