//! Runs one child process under supervision: its own process group and log
//! file, killed with the supervisor if the supervisor dies, restarted with
//! exponential backoff when it exits unexpectedly, and stopped with SIGTERM
//! (then SIGKILL after a grace period) for the whole group.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::components::Component;
use crate::control::ChildHandle;
use crate::metrics::SupervisorMetrics;
use crate::probe::Prober;

/// What a supervised child is doing now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChildState {
    Running {
        pid: u32,
        starts: u32,
    },
    /// Exited on its own; restarting after a backoff.
    Exited {
        status: String,
        starts: u32,
    },
    /// Exceeded its restart budget: the supervisor gives up on the cluster.
    GaveUp {
        status: String,
        starts: u32,
    },
    Stopped,
}

#[derive(Clone, Copy, Debug)]
pub struct RestartPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A run this long resets the backoff and the restart budget.
    pub healthy_after: Duration,
    pub max_restarts: u32,
    pub stop_grace: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
            max_restarts: 10,
            stop_grace: Duration::from_secs(15),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot open log file {path}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {name} ({program})")]
    Spawn {
        name: &'static str,
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct Supervised {
    pub name: &'static str,
    pub log_file: PathBuf,
    pub state: watch::Receiver<ChildState>,
    probe: crate::components::Probe,
    /// Set by an injected fault just before its signal (see [`crate::control`]).
    injected: Arc<AtomicBool>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Supervised {
    /// Starts `component` now; the first spawn's error is returned directly.
    pub fn start(
        component: Component,
        log_file: PathBuf,
        policy: RestartPolicy,
        metrics: SupervisorMetrics,
    ) -> Result<Self, ProcessError> {
        let log = open_log(&log_file)?;
        let child = spawn(&component, &log, 1)?;
        let (tx, rx) = watch::channel(ChildState::Running { pid: child.id().unwrap_or(0), starts: 1 });
        metrics.set_up(component.name, true);
        let stop = CancellationToken::new();
        let name = component.name;
        let probe = component.probe.clone();
        let injected = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(supervise(component, log, child, policy, metrics, tx, stop.clone(), injected.clone()));
        Ok(Self { name, log_file, state: rx, probe, injected, stop, task })
    }

    /// What the control routes need to inspect and hit this child.
    pub fn handle(&self) -> ChildHandle {
        ChildHandle {
            name: self.name,
            state: self.state.clone(),
            prober: Arc::new(Prober::new(self.probe.clone())),
            injected: self.injected.clone(),
            paused: Arc::new(AtomicBool::new(false)),
        }
    }

    /// SIGTERM to the process group, SIGKILL after the grace period; returns
    /// once the child has been reaped.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn open_log(path: &PathBuf) -> Result<File, ProcessError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ProcessError::Log { path: path.clone(), source })
}

#[allow(unsafe_code)]
fn spawn(c: &Component, log: &File, starts: u32) -> Result<Child, ProcessError> {
    let err = |source| ProcessError::Spawn { name: c.name, program: c.program.clone(), source };
    let mut header = log.try_clone().map_err(err)?;
    let _ = writeln!(
        header,
        "==== scaletest-cluster: start #{starts} of {} at {} ====\n{} {}",
        c.name,
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        c.program.display(),
        c.args.join(" ")
    );
    let mut cmd = Command::new(&c.program);
    cmd.args(&c.args)
        .envs(c.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(err)?)
        .stderr(log.try_clone().map_err(err)?)
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours. It
    // makes the kernel SIGKILL the child if the supervisor dies without
    // stopping it (even by SIGKILL), so no control plane outlives its owner.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(err)
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(s) => s.to_string(),
        Err(e) => format!("wait failed: {e}"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    c: Component,
    log: File,
    mut child: Child,
    policy: RestartPolicy,
    metrics: SupervisorMetrics,
    state: watch::Sender<ChildState>,
    stop: CancellationToken,
    injected: Arc<AtomicBool>,
) {
    let mut starts = 1u32;
    let mut restarts_in_window = 0u32;
    let mut backoff = policy.initial_backoff;
    loop {
        let started = Instant::now();
        let status = tokio::select! {
            s = child.wait() => describe(s),
            _ = stop.cancelled() => {
                terminate(&mut child, policy.stop_grace).await;
                metrics.set_up(c.name, false);
                let _ = state.send(ChildState::Stopped);
                return;
            }
        };
        // The child may have left members of its group behind.
        if let Some(pid) = child.id() {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        metrics.set_up(c.name, false);
        if started.elapsed() >= policy.healthy_after {
            backoff = policy.initial_backoff;
            restarts_in_window = 0;
        }
        // An injected fault is the harness's doing, not the child's: restart it at once,
        // without spending the restart budget (a fault `every: 1m` would exhaust it).
        let deliberate = injected.swap(false, Ordering::AcqRel);
        if !deliberate && restarts_in_window >= policy.max_restarts {
            tracing::error!(component = c.name, %status, starts, "exited too often; giving up");
            let _ = state.send(ChildState::GaveUp { status, starts });
            return;
        }
        let wait = if deliberate { policy.initial_backoff } else { backoff };
        tracing::warn!(component = c.name, %status, backoff = ?wait, deliberate, "exited; restarting");
        let _ = state.send(ChildState::Exited { status, starts });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => { let _ = state.send(ChildState::Stopped); return; }
        }
        if !deliberate {
            backoff = (backoff * 2).min(policy.max_backoff);
            restarts_in_window += 1;
        }
        starts += 1;
        match spawn(&c, &log, starts) {
            Ok(new) => {
                child = new;
                metrics.restarted(c.name);
                metrics.set_up(c.name, true);
                let _ = state.send(ChildState::Running { pid: child.id().unwrap_or(0), starts });
            }
            Err(e) => {
                tracing::error!(component = c.name, error = %e, "restart failed; giving up");
                let _ = state.send(ChildState::GaveUp { status: e.to_string(), starts });
                return;
            }
        }
    }
}

async fn terminate(child: &mut Child, grace: Duration) {
    let Some(pid) = child.id() else { return };
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    // A child held by a stop fault only sees the SIGTERM once resumed.
    let _ = killpg(group, Signal::SIGCONT);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        tracing::warn!(pid, "did not stop within {grace:?}; killing");
    }
    // Whatever is left of the group (the leader after the grace, or helpers it forked).
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait().await;
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
