//! Autoscaler KPIs measured from the apiserver alone, so that any system under test
//! (the reference SUT, or a controller that makes Nodes itself, such as Karpenter's
//! kwok provider) is judged without exporting anything of ours:
//!
//! - time to capacity: a run Pod marked `PodScheduled=False/Unschedulable` → bound
//!   ([`CapacityWaits`], fed by the Pod watch's tap);
//! - pending-Pod-seconds and the density model's ideal Node count ([`Ticker`], every
//!   second from the [`Tracker`]);
//! - Nodes: count, created, scale-up decisions and creation → Ready latency
//!   ([`NodeBook`], fed by a watch of every Node).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use scaletest_core::density::DensityModel;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::measure::{self, Tracker};
use crate::metrics::Metrics;

/// Nodes created at most this long after the previous one belong to the same
/// scale-up decision (controllers create a decision's Nodes in a quick burst).
pub const SCALE_UP_GAP: SignedDuration = SignedDuration::from_secs(2);

/// Node creationTimestamps have 1 s resolution and the apiserver's clock is not
/// ours: a Node created just after the driver started may carry an earlier second.
pub const CLOCK_SLACK: SignedDuration = SignedDuration::from_secs(1);

/// How often pending-Pod-seconds and the ideal Node count are updated.
pub const TICK: Duration = Duration::from_secs(1);

/// The server's time of a condition change, as a `Timestamp`.
fn transition(c: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<Timestamp> {
    c.map(|t| t.0)
}

/// `to - from`, or zero when the clocks disagree about the order.
fn elapsed(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

/// Where a Pod stands as far as time to capacity goes, with the server's time of it.
#[derive(Debug, PartialEq)]
enum Scheduling {
    /// `PodScheduled=False, reason=Unschedulable`: waiting for capacity.
    Unschedulable(Option<Timestamp>),
    /// `PodScheduled=True` (its time), or a node name however it got there (no time).
    Bound(Option<Timestamp>),
    /// Not looked at by a scheduler yet, or not schedulable for another reason.
    Other,
}

fn scheduling(pod: &Pod) -> Scheduling {
    let condition = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    let has_node = pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
    match condition {
        Some(c) if c.status == "True" => Scheduling::Bound(transition(c.last_transition_time.as_ref())),
        _ if has_node => Scheduling::Bound(None),
        Some(c) if c.status == "False" && c.reason.as_deref() == Some("Unschedulable") => {
            Scheduling::Unschedulable(transition(c.last_transition_time.as_ref()))
        }
        _ => Scheduling::Other,
    }
}

/// When a Pod was first seen marked Unschedulable: the server's time and ours.
#[derive(Clone, Copy, Debug)]
struct Mark {
    server: Option<Timestamp>,
    local: Instant,
}

/// The run's Pods currently waiting for capacity, by uid. The False condition's time
/// is gone once it flips to True, so it is remembered here when the watch shows it.
#[derive(Default)]
pub struct CapacityWaits {
    marked: HashMap<String, Mark>,
    /// Uids a re-list has shown so far (between `Init` and `InitDone`).
    relisted: Option<HashSet<String>>,
}

impl CapacityWaits {
    /// Folds one Pod watch event in, seen at `now`; returns the Pod's time to capacity
    /// when this event is the one that shows a marked Pod bound (once per Pod: its
    /// mark is dropped then). Server times are preferred (they survive a restart of the
    /// driver); our own instants stand in when either time is missing.
    pub fn handle(&mut self, event: &Event<Pod>, now: Instant) -> Option<Duration> {
        match event {
            Event::Init => {
                self.relisted = Some(HashSet::new());
                None
            }
            Event::InitApply(pod) => {
                if let Some(uid) = pod.uid() {
                    self.relisted.get_or_insert_with(HashSet::new).insert(uid);
                }
                self.apply(pod, now)
            }
            Event::InitDone => {
                // Pods deleted while the watch was down are not re-listed: forget them.
                if let Some(relisted) = self.relisted.take() {
                    self.marked.retain(|uid, _| relisted.contains(uid));
                }
                None
            }
            Event::Apply(pod) => self.apply(pod, now),
            Event::Delete(pod) => {
                if let Some(uid) = pod.uid() {
                    self.marked.remove(&uid);
                }
                None
            }
        }
    }

    fn apply(&mut self, pod: &Pod, now: Instant) -> Option<Duration> {
        let uid = pod.uid()?;
        match scheduling(pod) {
            // Re-marking keeps the condition's time while it stays False; keep the first.
            Scheduling::Unschedulable(server) => {
                self.marked.entry(uid).or_insert(Mark { server, local: now });
                None
            }
            Scheduling::Bound(bound) => {
                let mark = self.marked.remove(&uid)?;
                Some(match (mark.server, bound) {
                    (Some(from), Some(to)) => elapsed(from, to),
                    _ => now.saturating_duration_since(mark.local),
                })
            }
            Scheduling::Other => None,
        }
    }

    /// Pods seen marked and not yet bound.
    pub fn waiting(&self) -> usize {
        self.marked.len()
    }
}

/// The Pod watch's tap: observes each run Pod's time to capacity into `metrics`.
pub fn time_to_capacity_tap(metrics: &Metrics) -> impl FnMut(&Event<Pod>) + Send + 'static {
    let histogram = metrics.time_to_capacity.clone();
    let mut waits = CapacityWaits::default();
    move |event| {
        if let Some(d) = waits.handle(event, Instant::now()) {
            histogram.observe(d.as_secs_f64());
        }
    }
}

/// What one tick adds: pending-Pod-seconds, and the density model's ideal Node count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tick {
    pub pending_pod_seconds: f64,
    pub ideal_nodes: u64,
}

/// Integrates pending Pods over time and sizes the ideal Node count.
pub struct Ticker {
    density: DensityModel,
    last: Instant,
}

impl Ticker {
    pub fn new(pods_per_node: u32, now: Instant) -> Self {
        Self { density: DensityModel { pods_per_node, ..DensityModel::default() }, last: now }
    }

    /// `present` run Pods, `pending` of them not bound, at `now`. Pending Pods count for
    /// the time since the last tick, so a tick delayed on a loaded machine loses nothing.
    pub fn tick(&mut self, present: usize, pending: usize, now: Instant) -> Tick {
        let since = now.saturating_duration_since(self.last);
        self.last = now;
        Tick {
            pending_pod_seconds: pending as f64 * since.as_secs_f64(),
            ideal_nodes: self.density.nodes_for(present as u64),
        }
    }
}

/// Every [`TICK`] until `shutdown`: the ideal Node count from the objects `tracker`
/// sees and, when they are Pods (`pods`), pending-Pod-seconds. CapacityRequests each
/// ask for one Pod, so they size the ideal too; unacknowledged ones are not Pods.
pub async fn tick(
    tracker: Arc<Tracker>,
    pods: bool,
    pods_per_node: u32,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ticker = Ticker::new(pods_per_node, Instant::now());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            now = ticks.tick() => {
                let (present, reached) = tracker.counts();
                let pending = if pods { present.saturating_sub(reached) } else { 0 };
                let t = ticker.tick(present, pending, now);
                metrics.pending_pod_seconds.inc_by(t.pending_pod_seconds);
                metrics.nodes_ideal.set(i64::try_from(t.ideal_nodes).unwrap_or(i64::MAX));
            }
        }
    }
}

/// What one Node event changed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NodeChange {
    /// A Node created since the driver started, seen for the first time.
    pub created: bool,
    /// ... and it starts a new scale-up decision.
    pub scale_up: bool,
    /// Its creation → Ready latency, the first time it is seen Ready.
    pub ready_latency: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct NodeSeen {
    deleting: bool,
    /// Created since the driver started (only those are counted and measured).
    new: bool,
    ready_measured: bool,
}

/// Every Node in the cluster, by uid: how many exist, which the driver saw created,
/// the scale-up decisions they group into, and how long each took to be Ready.
pub struct NodeBook {
    /// Nodes created at or after this were created while the driver ran.
    since: Timestamp,
    nodes: HashMap<String, NodeSeen>,
    /// `nodes` as a re-list rebuilds it (between `Init` and `InitDone`).
    relisting: Option<HashMap<String, NodeSeen>>,
    /// The latest creationTimestamp of a counted Node: the current decision's.
    last_created: Option<Timestamp>,
}

impl NodeBook {
    /// A book for a driver started at `started` (wall clock).
    pub fn new(started: Timestamp) -> Self {
        Self { since: started - CLOCK_SLACK, nodes: HashMap::new(), relisting: None, last_created: None }
    }

    /// Nodes not being deleted.
    pub fn count(&self) -> usize {
        self.nodes.values().filter(|n| !n.deleting).count()
    }

    /// Folds one Node watch event in, seen at `now` (wall clock; used only when the
    /// Ready condition has no time).
    pub fn handle(&mut self, event: &Event<Node>, now: Timestamp) -> NodeChange {
        match event {
            Event::Init => {
                self.relisting = Some(HashMap::new());
                NodeChange::default()
            }
            Event::InitApply(node) => {
                let Some((uid, seen, change)) = self.apply(node, now) else { return NodeChange::default() };
                self.relisting.get_or_insert_with(HashMap::new).insert(uid, seen);
                change
            }
            Event::InitDone => {
                self.nodes = self.relisting.take().unwrap_or_default();
                NodeChange::default()
            }
            Event::Apply(node) => {
                let Some((uid, seen, change)) = self.apply(node, now) else { return NodeChange::default() };
                self.nodes.insert(uid, seen);
                change
            }
            Event::Delete(node) => {
                if let Some(uid) = node.uid() {
                    self.nodes.remove(&uid);
                }
                NodeChange::default()
            }
        }
    }

    fn apply(&mut self, node: &Node, now: Timestamp) -> Option<(String, NodeSeen, NodeChange)> {
        let uid = node.uid()?;
        let known = self.nodes.get(&uid).or_else(|| self.relisting.as_ref()?.get(&uid)).copied();
        let created_at = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let mut change = NodeChange::default();
        let new = match known {
            Some(seen) => seen.new,
            None => {
                let new = created_at.is_some_and(|t| t >= self.since);
                if let (true, Some(t)) = (new, created_at) {
                    change.created = true;
                    change.scale_up = self.last_created.is_none_or(|last| t.duration_since(last) > SCALE_UP_GAP);
                    self.last_created = Some(self.last_created.map_or(t, |last| last.max(t)));
                }
                new
            }
        };
        let mut ready_measured = known.is_some_and(|s| s.ready_measured);
        if new
            && !ready_measured
            && let (Some(created_at), Some(ready)) = (created_at, ready_condition(node))
        {
            change.ready_latency = Some(elapsed(created_at, ready.unwrap_or(now)));
            ready_measured = true;
        }
        let deleting = node.metadata.deletion_timestamp.is_some();
        Some((uid, NodeSeen { deleting, new, ready_measured }, change))
    }
}

/// `Some(time)` once the Node's Ready condition is True (`None` inside: no time given).
fn ready_condition(node: &Node) -> Option<Option<Timestamp>> {
    let conditions = node.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(transition(ready.last_transition_time.as_ref()))
}

/// Watches every Node until `shutdown`, keeping the Node metrics current. Nodes are few
/// (one per `density` Pods), so a full watch costs little.
pub async fn watch_nodes(api: Api<Node>, mut book: NodeBook, metrics: Metrics, shutdown: CancellationToken) {
    let on_event = |event: Event<Node>| {
        let change = book.handle(&event, Timestamp::now());
        if change.created {
            metrics.nodes_created.inc();
        }
        if change.scale_up {
            metrics.scale_ups.inc();
        }
        if let Some(d) = change.ready_latency {
            metrics.node_ready_latency.observe(d.as_secs_f64());
        }
        metrics.nodes.set(book.count() as i64);
    };
    measure::follow(api, watcher::Config::default(), &metrics, &shutdown, on_event).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    const T0: &str = "2025-01-01T00:00:00Z";

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// `T0` plus `secs`.
    fn at(secs: i64) -> Timestamp {
        ts(T0) + SignedDuration::from_secs(secs)
    }

    fn pod(uid: &str, condition: Option<(&str, Option<&str>, Option<i64>)>) -> Pod {
        let conditions = condition.map(|(status, reason, secs)| {
            vec![PodCondition {
                type_: "PodScheduled".into(),
                status: status.into(),
                reason: reason.map(Into::into),
                last_transition_time: secs.map(|s| Time(at(s))),
                ..Default::default()
            }]
        });
        Pod {
            metadata: ObjectMeta { uid: Some(uid.into()), ..Default::default() },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus { conditions, ..Default::default() }),
        }
    }

    fn unschedulable(uid: &str, secs: Option<i64>) -> Pod {
        pod(uid, Some(("False", Some("Unschedulable"), secs)))
    }

    fn bound(uid: &str, secs: Option<i64>) -> Pod {
        pod(uid, Some(("True", None, secs)))
    }

    #[test]
    fn pods_are_classified_by_their_scheduled_condition() {
        assert_eq!(scheduling(&pod("a", None)), Scheduling::Other);
        assert_eq!(scheduling(&pod("a", Some(("False", Some("SchedulerError"), Some(1))))), Scheduling::Other);
        assert_eq!(scheduling(&unschedulable("a", Some(1))), Scheduling::Unschedulable(Some(at(1))));
        assert_eq!(scheduling(&bound("a", Some(2))), Scheduling::Bound(Some(at(2))));
        let mut placed = pod("a", None);
        placed.spec.as_mut().unwrap().node_name = Some("n".into());
        assert_eq!(scheduling(&placed), Scheduling::Bound(None));
    }

    #[tokio::test(start_paused = true)]
    async fn time_to_capacity_runs_from_the_mark_to_bound_once_per_pod() {
        let mut w = CapacityWaits::default();
        let now = Instant::now();
        // Pending, not yet looked at: nothing; then marked at 10 s, re-marked (same time).
        assert_eq!(w.handle(&Event::Apply(pod("a", None)), now), None);
        assert_eq!(w.handle(&Event::Apply(unschedulable("a", Some(10))), now), None);
        assert_eq!(w.handle(&Event::Apply(unschedulable("a", Some(10))), now + TICK), None);
        assert_eq!(w.waiting(), 1);
        // Server times win over ours (the watch saw it 30 s later).
        let later = now + Duration::from_secs(30);
        assert_eq!(w.handle(&Event::Apply(bound("a", Some(17))), later), Some(Duration::from_secs(7)));
        assert_eq!(w.handle(&Event::Apply(bound("a", Some(17))), later), None, "recorded once");
        assert_eq!(w.waiting(), 0);
        // A Pod that found capacity at once is not observed.
        assert_eq!(w.handle(&Event::Apply(bound("b", Some(3))), later), None);
    }

    #[tokio::test(start_paused = true)]
    async fn missing_times_fall_back_to_the_watch_instants() {
        let mut w = CapacityWaits::default();
        let now = Instant::now();
        w.handle(&Event::Apply(unschedulable("a", None)), now);
        w.handle(&Event::Apply(unschedulable("b", Some(1))), now);
        let later = now + Duration::from_millis(2500);
        assert_eq!(w.handle(&Event::Apply(bound("a", Some(9))), later), Some(Duration::from_millis(2500)));
        // Bound by a node name alone: no True time either.
        let mut placed = pod("b", None);
        placed.spec.as_mut().unwrap().node_name = Some("n".into());
        assert_eq!(w.handle(&Event::Apply(placed), later), Some(Duration::from_millis(2500)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_driver_measures_a_listed_mark_from_the_server_time() {
        // A fresh driver lists a Pod marked long before it started.
        let mut w = CapacityWaits::default();
        let now = Instant::now();
        w.handle(&Event::Init, now);
        w.handle(&Event::InitApply(unschedulable("a", Some(0))), now);
        w.handle(&Event::InitApply(bound("b", Some(0))), now);
        w.handle(&Event::InitDone, now);
        assert_eq!(w.handle(&Event::Apply(bound("a", Some(42))), now + TICK), Some(Duration::from_secs(42)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_relist_forgets_deleted_pods_and_measures_those_bound_meanwhile() {
        let mut w = CapacityWaits::default();
        let now = Instant::now();
        for uid in ["a", "b", "c"] {
            w.handle(&Event::Apply(unschedulable(uid, Some(1))), now);
        }
        w.handle(&Event::Delete(unschedulable("c", Some(1))), now);
        assert_eq!(w.waiting(), 2);
        // The watch drops; "a" is deleted meanwhile and "b" gets bound at 5 s.
        w.handle(&Event::Init, now);
        assert_eq!(w.handle(&Event::InitApply(bound("b", Some(5))), now), Some(Duration::from_secs(4)));
        w.handle(&Event::InitDone, now);
        assert_eq!(w.waiting(), 0);
        // The same bound Pod listed again is not measured twice.
        w.handle(&Event::Init, now);
        assert_eq!(w.handle(&Event::InitApply(bound("b", Some(5))), now), None);
        w.handle(&Event::InitDone, now);
    }

    #[tokio::test(start_paused = true)]
    async fn pending_pods_accumulate_over_the_time_between_ticks() {
        let start = Instant::now();
        let mut t = Ticker::new(100, start);
        assert_eq!(t.tick(0, 0, start).pending_pod_seconds, 0.0);
        assert_eq!(t.tick(3, 3, start + TICK).pending_pod_seconds, 3.0);
        // A tick delayed to 2.5 s later counts the whole time.
        let late = start + TICK + Duration::from_millis(2500);
        assert_eq!(t.tick(3, 2, late).pending_pod_seconds, 5.0);
        assert_eq!(t.tick(3, 0, late + TICK).pending_pod_seconds, 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_ideal_rounds_up_to_whole_nodes() {
        let now = Instant::now();
        let mut t = Ticker::new(100, now);
        let ideal = |t: &mut Ticker, pods| t.tick(pods, 0, now).ideal_nodes;
        assert_eq!([0, 1, 100, 101, 250].map(|p| ideal(&mut t, p)), [0, 1, 1, 2, 3]);
        let mut dense = Ticker::new(7, now);
        assert_eq!(ideal(&mut dense, 15), 3);
    }

    fn node(uid: &str, created: i64, ready: Option<Option<i64>>) -> Node {
        let conditions = ready.map(|secs| {
            vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: secs.map(|s| Time(at(s))),
                ..Default::default()
            }]
        });
        Node {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                creation_timestamp: Some(Time(at(created))),
                ..Default::default()
            },
            status: Some(NodeStatus { conditions, ..Default::default() }),
            ..Default::default()
        }
    }

    /// Feeds `nodes` to `book` as Apply events; returns (created, scale-ups).
    fn feed(book: &mut NodeBook, nodes: &[Node]) -> (usize, usize) {
        let changes: Vec<NodeChange> = nodes.iter().map(|n| book.handle(&Event::Apply(n.clone()), at(100))).collect();
        (changes.iter().filter(|c| c.created).count(), changes.iter().filter(|c| c.scale_up).count())
    }

    #[test]
    fn nodes_created_within_two_seconds_of_the_previous_are_one_scale_up() {
        let mut book = NodeBook::new(at(10));
        // 9 s is inside the clock slack; 12 and 14 follow within 2 s; 17 starts anew.
        let nodes = [10, 9, 12, 14, 17, 19].map(|s| node(&format!("n{s}"), s, None));
        assert_eq!(feed(&mut book, &nodes), (6, 2));
        // Seen again (a status update): nothing new.
        assert_eq!(feed(&mut book, &nodes), (0, 0));
        assert_eq!(book.count(), 6);
        // Just past the gap.
        assert_eq!(feed(&mut book, &[node("n22", 22, None)]), (1, 1));
    }

    #[test]
    fn nodes_from_before_the_driver_started_are_counted_but_not_measured() {
        let mut book = NodeBook::new(at(10));
        let old = node("old", 8, Some(Some(9)));
        assert_eq!(book.handle(&Event::Apply(old), at(10)), NodeChange::default());
        assert_eq!(book.count(), 1);
    }

    #[test]
    fn ready_latency_is_measured_once_per_node() {
        let mut book = NodeBook::new(at(0));
        let c = book.handle(&Event::Apply(node("a", 5, None)), at(5));
        assert_eq!(c, NodeChange { created: true, scale_up: true, ready_latency: None });
        let c = book.handle(&Event::Apply(node("a", 5, Some(Some(8)))), at(9));
        assert_eq!(c.ready_latency, Some(Duration::from_secs(3)));
        assert_eq!(book.handle(&Event::Apply(node("a", 5, Some(Some(8)))), at(9)).ready_latency, None);
        // Ready at once, without a time: up to when the watch showed it.
        let c = book.handle(&Event::Apply(node("b", 20, Some(None))), at(21));
        assert_eq!(c, NodeChange { created: true, scale_up: true, ready_latency: Some(Duration::from_secs(1)) });
    }

    #[test]
    fn deleting_and_relisted_nodes_are_counted_right() {
        let mut book = NodeBook::new(at(0));
        feed(&mut book, &[node("a", 1, Some(Some(2))), node("b", 1, None)]);
        let mut going = node("a", 1, Some(Some(2)));
        going.metadata.deletion_timestamp = Some(Time(at(30)));
        book.handle(&Event::Apply(going), at(30));
        assert_eq!(book.count(), 1, "a Node being deleted is not counted");
        // The watch drops: "a" goes, "b" gets Ready, "c" appears; a relist sees it all once.
        book.handle(&Event::Init, at(40));
        let b = book.handle(&Event::InitApply(node("b", 1, Some(Some(3)))), at(40));
        assert_eq!(b, NodeChange { ready_latency: Some(Duration::from_secs(2)), ..NodeChange::default() });
        let c = book.handle(&Event::InitApply(node("c", 35, None)), at(40));
        assert!(c.created && c.scale_up);
        book.handle(&Event::InitDone, at(40));
        assert_eq!(book.count(), 2);
        book.handle(&Event::Delete(node("b", 1, None)), at(41));
        assert_eq!(book.count(), 1);
    }
}
