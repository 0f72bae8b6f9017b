//! Starts `scaletest-cluster` as a child process and waits for its endpoints
//! file: how the runner's local target (and the integration tests) bring up
//! simulated clusters, through the very binary the image runs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use scaletest_core::endpoints::{self, Endpoints};
use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot start {program}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("simulated cluster {name} exited before it was ready ({status}); see {log}:\n{tail}")]
    Exited { name: String, status: String, log: String, tail: String },
    #[error("simulated cluster {name} was not ready within {timeout:?}; see {log}")]
    Timeout { name: String, timeout: Duration, log: String },
    #[error("cannot choose ports for the clusters: {0}")]
    Ports(#[from] crate::ports::PortError),
    #[error("cannot prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running `scaletest-cluster` process. Dropping it kills the supervisor
/// (whose children die with it); call [`ClusterProcess::stop`] for a clean stop.
pub struct ClusterProcess {
    pub name: String,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    child: Child,
}

impl ClusterProcess {
    /// Runs `program --name NAME --data-dir DIR [extra args]`, logging to `DIR/../NAME.log`.
    pub fn spawn(program: &Path, name: &str, data_dir: &Path, extra: &[String]) -> Result<Self, LaunchError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| LaunchError::Io { path, source }
        };
        std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
        let _ = std::fs::remove_file(data_dir.join(endpoints::FILE_NAME));
        let log_file = data_dir.join("logs").join("scaletest-cluster.log");
        std::fs::create_dir_all(log_file.parent().unwrap_or(data_dir)).map_err(io(data_dir))?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_file).map_err(io(&log_file))?;
        let child = Command::new(program)
            .arg("--name")
            .arg(name)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io(&log_file))?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| LaunchError::Spawn { program: program.to_owned(), source })?;
        Ok(Self { name: name.to_string(), data_dir: data_dir.to_owned(), log_file, child })
    }

    pub fn endpoints_path(&self) -> PathBuf {
        self.data_dir.join(endpoints::FILE_NAME)
    }

    /// Polls for the endpoints file until `timeout`; fails early if the supervisor exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Endpoints, LaunchError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(e) = Endpoints::read(&self.endpoints_path()) {
                return Ok(e);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(LaunchError::Exited {
                    name: self.name.clone(),
                    status: status.to_string(),
                    log: self.log_file.display().to_string(),
                    tail: crate::process::log_tail(&self.log_file, 10),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LaunchError::Timeout {
                    name: self.name.clone(),
                    timeout,
                    log: self.log_file.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then wait (SIGKILL after `grace`); returns the exit status.
    pub async fn stop(mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Some(pid) = self.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = self.child.start_kill();
                self.child.wait().await.ok()
            }
        }
    }
}

/// A workspace binary built next to the running test or tool (`target/<profile>/NAME`):
/// test executables live in `target/<profile>/deps/`. Build them first with
/// `cargo build --workspace --bins` (`make test` does).
pub fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let profile_dir = if dir.ends_with("deps") { dir.parent().map(Path::to_path_buf).unwrap_or(dir) } else { dir };
    profile_dir.join(name)
}
