//! Fault injection and child status, on the supervisor's admin port (next to
//! `/metrics`), for loopback callers only:
//!
//! - `GET /children` and `GET /children/{name}`: each child's pid, starts, state
//!   and readiness (its startup probe, asked now);
//! - `POST /faults/{name}/{action}` (`kill`, `restart`, `stop?for=10s`): signals the
//!   child's process group. kill = SIGKILL, restart = SIGTERM (the supervisor starts
//!   it again either way, without counting it against the restart budget: the
//!   fault is ours, not the child's), stop = SIGSTOP, then SIGCONT after `for`.
//!
//! Why here and not pid files: the supervisor owns the child and its restarts, so it
//! is the one place that knows the current pid without a race, and the same route
//! serves the kube target through `kubectl port-forward` (which arrives on loopback,
//! while the port itself listens on the pod IP for Prometheus).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use scaletest_core::http::{self, HttpError};
use scaletest_core::profile::FaultAction;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::probe::Prober;
use crate::process::ChildState;

/// What the control routes need of one supervised child.
#[derive(Clone)]
pub struct ChildHandle {
    pub name: &'static str,
    pub state: watch::Receiver<ChildState>,
    pub prober: Arc<Prober>,
    /// Set before a fault's signal: the supervise loop then restarts without backoff
    /// growth and without counting the exit against the restart budget.
    pub injected: Arc<AtomicBool>,
    /// True between a stop fault's SIGSTOP and its SIGCONT.
    pub paused: Arc<AtomicBool>,
}

/// The children the routes act on; filled once the cluster is up.
#[derive(Clone, Default)]
pub struct Children(Arc<RwLock<Vec<ChildHandle>>>);

impl Children {
    pub fn set(&self, handles: Vec<ChildHandle>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = handles;
    }

    fn find(&self, name: &str) -> Option<ChildHandle> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).iter().find(|c| c.name == name).cloned()
    }

    fn all(&self) -> Vec<ChildHandle> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One child as `GET /children` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildStatus {
    pub name: String,
    /// `running`, `exited` (restarting after a backoff), `gaveUp` or `stopped`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Processes started so far (1 = never restarted).
    pub starts: u32,
    /// Held by a stop fault (SIGSTOP) right now.
    pub paused: bool,
    /// Its probe passes now (never while paused or not running).
    pub ready: bool,
}

/// What `POST /faults/...` did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultReply {
    pub name: String,
    pub action: String,
    /// The process group signalled.
    pub pid: u32,
    /// `starts` of the child when it was hit: recovered from kill/restart once above it.
    pub starts: u32,
}

async fn status(c: &ChildHandle) -> ChildStatus {
    let state = c.state.borrow().clone();
    let paused = c.paused.load(Ordering::Acquire);
    let (name, pid, starts) = match state {
        ChildState::Running { pid, starts } => ("running", Some(pid), starts),
        ChildState::Exited { starts, .. } => ("exited", None, starts),
        ChildState::GaveUp { starts, .. } => ("gaveUp", None, starts),
        ChildState::Stopped => ("stopped", None, 0),
    };
    let ready = pid.is_some() && !paused && c.prober.ready().await;
    ChildStatus { name: c.name.to_string(), state: name.to_string(), pid, starts, paused, ready }
}

/// The routes, to merge into the supervisor's admin server.
pub fn router(children: Children) -> Router {
    Router::new()
        .route("/children", get(list))
        .route("/children/{name}", get(one))
        .route("/faults/{name}/{action}", post(fault))
        .with_state(children)
}

fn json<T: Serialize>(value: &T) -> Response {
    let body = serde_json::to_string(value).expect("control replies always serialise");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// `kubectl port-forward` and the local runner arrive from loopback; anything else
/// (the pod network in kube mode) may scrape metrics but not kill processes.
fn unless_loopback(peer: SocketAddr) -> Option<Response> {
    (!peer.ip().is_loopback()).then(|| {
        refuse(StatusCode::FORBIDDEN, format!("control routes answer loopback callers only, not {}", peer.ip()))
    })
}

async fn list(ConnectInfo(peer): ConnectInfo<SocketAddr>, State(children): State<Children>) -> Response {
    if let Some(r) = unless_loopback(peer) {
        return r;
    }
    let all = futures::future::join_all(children.all().iter().map(status)).await;
    json(&all)
}

async fn one(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(children): State<Children>,
    Path(name): Path<String>,
) -> Response {
    if let Some(r) = unless_loopback(peer) {
        return r;
    }
    match children.find(&name) {
        Some(c) => json(&status(&c).await),
        None => refuse(StatusCode::NOT_FOUND, format!("no child named {name:?}")),
    }
}

async fn fault(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(children): State<Children>,
    Path((name, action)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    if let Some(r) = unless_loopback(peer) {
        return r;
    }
    let Some(action) = FaultAction::parse(&action) else {
        return refuse(StatusCode::BAD_REQUEST, format!("expected an action kill, stop or restart, found {action:?}"));
    };
    let hold = match (action, query_value(&uri, "for")) {
        (FaultAction::Stop, Some(text)) => match humantime::parse_duration(&text) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => return refuse(StatusCode::BAD_REQUEST, format!("for: expected a positive duration, found {text:?}")),
        },
        (FaultAction::Stop, None) => {
            return refuse(StatusCode::BAD_REQUEST, "stop needs ?for=<duration>");
        }
        (_, Some(_)) => return refuse(StatusCode::BAD_REQUEST, "only stop takes ?for="),
        (_, None) => None,
    };
    let Some(child) = children.find(&name) else {
        return refuse(StatusCode::NOT_FOUND, format!("no child named {name:?}"));
    };
    match inject(&child, action, hold) {
        Ok(reply) => json(&reply),
        Err(message) => refuse(StatusCode::CONFLICT, message),
    }
}

fn query_value(uri: &Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

/// Signals the child's process group now; a stop's SIGCONT follows on its own task.
fn inject(child: &ChildHandle, action: FaultAction, hold: Option<Duration>) -> Result<FaultReply, String> {
    let ChildState::Running { pid, starts } = child.state.borrow().clone() else {
        return Err(format!("{} is not running", child.name));
    };
    if child.paused.load(Ordering::Acquire) {
        return Err(format!("{} is held by a stop fault already", child.name));
    }
    let group = Pid::from_raw(pid as i32);
    let signal = |s: Signal| killpg(group, s).map_err(|e| format!("cannot send {s} to {} ({pid}): {e}", child.name));
    match action {
        FaultAction::Kill | FaultAction::Restart => {
            child.injected.store(true, Ordering::Release);
            let s = if action == FaultAction::Kill { Signal::SIGKILL } else { Signal::SIGTERM };
            if let Err(e) = signal(s) {
                child.injected.store(false, Ordering::Release);
                return Err(e);
            }
        }
        FaultAction::Stop => {
            child.paused.store(true, Ordering::Release);
            if let Err(e) = signal(Signal::SIGSTOP) {
                child.paused.store(false, Ordering::Release);
                return Err(e);
            }
            let (paused, hold) = (child.paused.clone(), hold.unwrap_or_default());
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                // A group that died meanwhile makes this ESRCH: nothing to resume.
                let _ = killpg(group, Signal::SIGCONT);
                paused.store(false, Ordering::Release);
            });
        }
    }
    tracing::warn!(component = child.name, %action, pid, hold = ?hold, "fault injected");
    Ok(FaultReply { name: child.name.to_string(), action: action.to_string(), pid, starts })
}

// ---------------------------------------------------------------------------------------
// Client side (the runner)
// ---------------------------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("{addr} answered {what} with something that is not a scaletest-cluster reply: {body}")]
    Decode { addr: String, what: String, body: String },
}

fn decode<T: for<'de> Deserialize<'de>>(addr: &str, what: &str, body: &str) -> Result<T, ControlError> {
    serde_json::from_str(body).map_err(|_| ControlError::Decode {
        addr: addr.into(),
        what: what.into(),
        body: body.chars().take(200).collect(),
    })
}

/// `POST /faults/{name}/{action}` on the supervisor whose admin port is `addr`.
pub async fn send_fault(
    addr: &str,
    name: &str,
    action: FaultAction,
    hold: Option<Duration>,
) -> Result<FaultReply, ControlError> {
    let mut path = format!("/faults/{name}/{action}");
    if let Some(hold) = hold {
        path.push_str(&format!("?for={}", http::encode(&humantime::format_duration(hold).to_string())));
    }
    let body = http::post(addr, &path).await?;
    decode(addr, &path, &body)
}

/// `GET /children/{name}`.
pub async fn child_status(addr: &str, name: &str) -> Result<ChildStatus, ControlError> {
    let path = format!("/children/{name}");
    let body = http::get(addr, &path).await?;
    decode(addr, &path, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hold_from_the_query() {
        let uri: Uri = "/faults/kine/stop?x=1&for=10s".parse().unwrap();
        assert_eq!(query_value(&uri, "for").as_deref(), Some("10s"));
        assert_eq!(query_value(&"/faults/kine/kill".parse().unwrap(), "for"), None);
    }
}
