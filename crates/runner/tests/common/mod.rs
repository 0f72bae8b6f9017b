//! What the whole-run tests share: the runner binary, the run's summary, leftover
//! processes, and a replay of the run's Prometheus snapshot.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn runner(tmp: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scaletest-runner"));
    c.env("TMPDIR", tmp).env("NO_COLOR", "1").current_dir(repo());
    c
}

/// A copy of the smoke profile with `edit` applied to its YAML text.
pub fn smoke_variant(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("profiles/smoke.yaml")).unwrap();
    let text = edit(text.replace("name: smoke", &format!("name: {name}")));
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The smoke profile with the default SLOs' thresholds lifted: a test proves the run
/// end to end on a shared, noisy machine; how fast it is belongs to `make bench` and
/// results/.
pub fn smoke_lifted(dir: &Path, name: &str) -> PathBuf {
    let slos: Vec<_> = scaletest_core::profile::default_slos()
        .into_iter()
        .map(|mut slo| {
            slo.threshold = 600.0;
            slo
        })
        .collect();
    let slos = serde_yaml_ng::to_string(&serde_json::json!({ "slos": slos })).unwrap();
    smoke_variant(dir, name, |t| t.replace("# `slos` is left out", &format!("{slos}#")))
}

pub fn summary(output: &Path) -> Value {
    let text = std::fs::read_to_string(output.join("summary.json")).expect("summary.json written");
    serde_json::from_str(&text).unwrap()
}

/// `scaletest-runner run --yes --profile <profile> <extra> --output <tmp>/out`: its exit
/// code, its summary.json and the output directory.
pub fn run(tmp: &Path, profile: &Path, extra: &[&str]) -> (Option<i32>, Value, PathBuf) {
    let out = tmp.join("out");
    let status = runner(tmp)
        .args(["run", "--yes", "--profile"])
        .arg(profile)
        .args(extra)
        .arg("--output")
        .arg(&out)
        .status()
        .unwrap();
    (status.code(), summary(&out), out)
}

/// Processes whose command line mentions `tmp`: anything the run left behind.
pub fn leftovers(tmp: &Path) -> Vec<String> {
    let needle = tmp.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmd| cmd.contains(&needle))
        .collect()
}

/// Opens the run's `prometheus-snapshot.tar.gz` (from `out`) in a Prometheus of its own,
/// as a user replays it, and answers `query` once it has data (bounded by a minute).
pub fn replay_snapshot(tmp: &Path, out: &Path, query: &str) -> f64 {
    let replay = tmp.join("replay");
    std::fs::create_dir_all(&replay).unwrap();
    let tar =
        Command::new("tar").arg("-xzf").arg(out.join("prometheus-snapshot.tar.gz")).arg("-C").arg(&replay).status();
    assert!(tar.unwrap().success());
    let config = tmp.join("empty.yml");
    std::fs::write(&config, "global: {}\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bin = scaletest_cluster::binaries::find("prometheus", &scaletest_cluster::binaries::default_bin_dir()).unwrap();
    let mut prom = Command::new(bin)
        .arg(format!("--storage.tsdb.path={}", replay.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--config.file={}", config.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let value = loop {
        let v = rt.block_on(scaletest_runner::prom::query(&format!("127.0.0.1:{port}"), query));
        if let Ok(Some(v)) = v {
            break v;
        }
        if Instant::now() >= deadline {
            let _ = prom.kill();
            panic!("the snapshot never answered {query}: {v:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = prom.kill();
    let _ = prom.wait();
    value
}
