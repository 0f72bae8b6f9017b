//! Watches the run's Pods (or CapacityRequests) and measures how long each took to
//! be bound (acknowledged): from the client-side create instant when the driver
//! remembers it, else from the server's timestamps (1 s resolution; after a restart).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use scaletest_core::crd::{CapacityRequest, CapacityRequestPhase};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, Operation};
use crate::objects::ObjectKey;

/// An object kind whose "done" moment the driver measures.
pub trait Measured: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {
    /// `None` while not there yet; once there, the server-side latency if its
    /// timestamps tell (the fallback for objects created before a restart).
    fn reached(&self) -> Option<Option<Duration>>;
}

fn between(from: Option<&Time>, to: Option<&Time>) -> Option<Duration> {
    let d = to?.0.duration_since(from?.0);
    Duration::try_from(d).ok()
}

impl Measured for Pod {
    /// Bound: PodScheduled=True (set by the Binding API), or a node name however it got there.
    fn reached(&self) -> Option<Option<Duration>> {
        let scheduled = self
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled" && c.status == "True"));
        let has_node = self.spec.as_ref().is_some_and(|s| s.node_name.is_some());
        match scheduled {
            Some(c) => Some(between(self.metadata.creation_timestamp.as_ref(), c.last_transition_time.as_ref())),
            None if has_node => Some(None),
            None => None,
        }
    }
}

impl Measured for CapacityRequest {
    /// Acknowledged, or past it (Fulfilled; Failed after an acknowledgement).
    fn reached(&self) -> Option<Option<Duration>> {
        let status = self.status.as_ref()?;
        let acknowledged_at = status.acknowledged_at.as_ref();
        match status.phase? {
            CapacityRequestPhase::Acknowledged | CapacityRequestPhase::Fulfilled => {}
            CapacityRequestPhase::Failed if acknowledged_at.is_some() => {}
            CapacityRequestPhase::Failed | CapacityRequestPhase::Pending => return None,
        }
        Some(between(self.metadata.creation_timestamp.as_ref(), acknowledged_at))
    }
}

/// What the tracker needs of one watched object.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub key: ObjectKey,
    pub uid: Option<String>,
    /// See [`Measured::reached`].
    pub reached: Option<Option<Duration>>,
}

impl Observation {
    pub fn of<K: Measured>(obj: &K) -> Self {
        Self {
            key: ObjectKey::new(obj.namespace().unwrap_or_default(), obj.name_any()),
            uid: obj.uid(),
            reached: obj.reached(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Seen {
    uid: Option<String>,
    reached: bool,
}

#[derive(Default)]
struct State {
    /// Client-side create instants of objects not yet seen reached.
    sent: HashMap<ObjectKey, Instant>,
    /// Every object of the run the watch currently sees.
    present: HashMap<ObjectKey, Seen>,
    /// `present` as a re-list rebuilds it (between `Init` and `InitDone`).
    relisting: Option<HashMap<ObjectKey, Seen>>,
    reached: usize,
    synced: bool,
}

/// Which objects exist and are bound/acknowledged; records each one's latency once.
pub struct Tracker {
    state: Mutex<State>,
    latency: Histogram,
    reached_gauge: Gauge,
}

impl Tracker {
    pub fn new(latency: Histogram, reached_gauge: Gauge) -> Self {
        Self { state: Mutex::new(State::default()), latency, reached_gauge }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The driver is about to send the create of `key`.
    pub fn sent(&self, key: ObjectKey, at: Instant) {
        self.lock().sent.insert(key, at);
    }

    /// The driver gave up on `key` or deleted it: no latency from its instant.
    pub fn forget(&self, key: &ObjectKey) {
        self.lock().sent.remove(key);
    }

    /// Whether the watch currently sees `key`.
    pub fn is_present(&self, key: &ObjectKey) -> bool {
        self.lock().present.contains_key(key)
    }

    pub fn is_reached(&self, key: &ObjectKey) -> bool {
        self.lock().present.get(key).is_some_and(|s| s.reached)
    }

    /// Whether every key is present and reached.
    pub fn all_reached<'a>(&self, mut keys: impl Iterator<Item = &'a ObjectKey>) -> bool {
        let s = self.lock();
        keys.all(|k| s.present.get(k).is_some_and(|seen| seen.reached))
    }

    /// Whether every object the watch sees is reached (true when there are none).
    pub fn all_present_reached(&self) -> bool {
        let s = self.lock();
        s.reached == s.present.len()
    }

    pub fn reached_count(&self) -> usize {
        self.lock().reached
    }

    /// Objects the watch sees, and how many of them are reached.
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.present.len(), s.reached)
    }

    /// Whether the watch has listed everything once.
    pub fn synced(&self) -> bool {
        self.lock().synced
    }

    /// Folds one watch event in, observed at `now`.
    pub fn handle(&self, event: Event<Observation>, now: Instant) {
        let mut s = self.lock();
        match event {
            Event::Init => s.relisting = Some(HashMap::new()),
            Event::InitApply(o) => {
                let seen = self.seen(&mut s, &o, now);
                s.relisting.get_or_insert_with(HashMap::new).insert(o.key, seen);
            }
            Event::InitDone => {
                // Objects deleted while the watch was down are simply not re-listed.
                s.present = s.relisting.take().unwrap_or_default();
                s.reached = s.present.values().filter(|seen| seen.reached).count();
                s.synced = true;
            }
            Event::Apply(o) => {
                let seen = self.seen(&mut s, &o, now);
                let now_reached = seen.reached;
                if s.present.insert(o.key, seen).is_some_and(|old| old.reached) {
                    s.reached -= 1;
                }
                if now_reached {
                    s.reached += 1;
                }
            }
            Event::Delete(o) => {
                if s.present.get(&o.key).is_some_and(|seen| seen.uid == o.uid)
                    && s.present.remove(&o.key).is_some_and(|old| old.reached)
                {
                    s.reached -= 1;
                }
                s.sent.remove(&o.key);
            }
        }
        self.reached_gauge.set(s.reached as i64);
    }

    /// The new record for `o`, observing its latency if this is its first sighting reached.
    fn seen(&self, s: &mut State, o: &Observation, now: Instant) -> Seen {
        let same = |seen: &Seen| seen.uid == o.uid && seen.reached;
        let already = s.present.get(&o.key).is_some_and(same)
            || s.relisting.as_ref().and_then(|r| r.get(&o.key)).is_some_and(same);
        if let Some(server_latency) = o.reached
            && !already
        {
            let latency = match s.sent.remove(&o.key) {
                Some(sent) => Some(now.saturating_duration_since(sent)),
                None => server_latency,
            };
            if let Some(latency) = latency {
                self.latency.observe(latency.as_secs_f64());
            }
        }
        Seen { uid: o.uid.clone(), reached: o.reached.is_some() }
    }
}

/// Feeds the watch of the run's `K`s (those matching `selector`) into `tracker` until
/// `shutdown`; calls `on_synced` after the first full list. `tap` sees each raw event
/// first (the KPIs read what an [`Observation`] drops).
pub async fn watch<K: Measured>(
    api: Api<K>,
    selector: String,
    tracker: Arc<Tracker>,
    metrics: Metrics,
    shutdown: CancellationToken,
    on_synced: impl FnOnce(),
    mut tap: impl FnMut(&Event<K>),
) {
    let mut on_synced = Some(on_synced);
    let on_event = |event: Event<K>| {
        tap(&event);
        let done = matches!(event, Event::InitDone);
        tracker.handle(observe(event), Instant::now());
        if done && let Some(f) = on_synced.take() {
            f();
        }
    };
    follow(api, watcher::Config::default().labels(&selector), &metrics, &shutdown, on_event).await;
}

/// Hands every event of the watch of `api` to `on_event` until `shutdown`. Watch
/// errors are counted and retried with backoff, forever.
pub async fn follow<K>(
    api: Api<K>,
    config: watcher::Config,
    metrics: &Metrics,
    shutdown: &CancellationToken,
    mut on_event: impl FnMut(Event<K>),
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = stream.next() => next,
        };
        match next {
            None => return,
            Some(Ok(event)) => on_event(event),
            Some(Err(error)) => {
                metrics.error(Operation::watch);
                tracing::warn!(kind = K::kind(&()).as_ref(), %error, "watch failed; retrying with backoff");
            }
        }
    }
}

fn observe<K: Measured>(event: Event<K>) -> Event<Observation> {
    match event {
        Event::Apply(o) => Event::Apply(Observation::of(&o)),
        Event::Delete(o) => Event::Delete(Observation::of(&o)),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(Observation::of(&o)),
        Event::InitDone => Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::jiff::Timestamp;
    use kube::api::ObjectMeta;
    use prometheus_client::encoding::text::encode;
    use prometheus_client::registry::Registry;
    use scaletest_core::crd::{CapacityRequestSpec, CapacityRequestStatus, Need};

    fn tracker() -> (Tracker, Registry) {
        let mut registry = Registry::default();
        let latency = Histogram::new([0.5, 1.0, 2.0, 5.0]);
        let gauge = Gauge::default();
        registry.register("latency", "", latency.clone());
        registry.register("reached", "", gauge.clone());
        (Tracker::new(latency, gauge), registry)
    }

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    fn obs(name: &str, uid: &str, reached: Option<Option<Duration>>) -> Observation {
        Observation { key: ObjectKey::new("ns", name), uid: Some(uid.into()), reached }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("ns", name)
    }

    const BOUND: Option<Option<Duration>> = Some(None);

    #[tokio::test(start_paused = true)]
    async fn latency_runs_from_the_client_create_instant_and_is_observed_once() {
        let (t, registry) = tracker();
        let start = Instant::now();
        t.sent(key("a"), start);
        t.handle(Event::Apply(obs("a", "1", None)), start + Duration::from_millis(100));
        assert!(!t.is_reached(&key("a")));
        // The server says 3 s (1 s resolution); the client saw 1.5 s: the client wins.
        let now = start + Duration::from_millis(1500);
        t.handle(Event::Apply(obs("a", "1", Some(Some(Duration::from_secs(3))))), now);
        t.handle(Event::Apply(obs("a", "1", Some(Some(Duration::from_secs(3))))), now + Duration::from_secs(9));
        let out = text(&registry);
        assert!(out.contains("latency_count 1\n"), "{out}");
        assert!(out.contains("latency_sum 1.5\n"), "{out}");
        assert!(out.contains("reached 1\n"), "{out}");
        assert!(t.is_reached(&key("a")));
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_objects_fall_back_to_server_timestamps() {
        let (t, registry) = tracker();
        let now = Instant::now();
        t.handle(Event::Apply(obs("a", "1", Some(Some(Duration::from_secs(2))))), now);
        // Reached, but the server timestamps do not tell: counted as bound, not measured.
        t.handle(Event::Apply(obs("b", "2", BOUND)), now);
        let out = text(&registry);
        assert!(out.contains("latency_count 1\n"), "{out}");
        assert!(out.contains("latency_sum 2.0\n"), "{out}");
        assert_eq!(t.reached_count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_relist_neither_double_counts_nor_keeps_deleted_objects() {
        let (t, registry) = tracker();
        let now = Instant::now();
        t.handle(Event::Init, now);
        t.handle(Event::InitApply(obs("a", "1", BOUND)), now);
        t.handle(Event::InitApply(obs("b", "2", None)), now);
        assert!(!t.synced());
        t.handle(Event::InitDone, now);
        assert!(t.synced());
        assert_eq!(t.reached_count(), 1);
        assert_eq!(t.counts(), (2, 1));
        assert!(!t.all_present_reached());

        // The watch drops; meanwhile "a" is deleted and "b" gets bound.
        t.sent(key("b"), now);
        let later = now + Duration::from_secs(1);
        t.handle(Event::Init, later);
        t.handle(Event::InitApply(obs("b", "2", BOUND)), later);
        t.handle(Event::InitDone, later);
        assert_eq!(t.reached_count(), 1);
        assert!(!t.is_reached(&key("a")));
        assert!(t.all_present_reached());
        assert!(text(&registry).contains("latency_count 1\n"));

        // Re-listing the same bound objects again observes nothing new.
        t.handle(Event::Init, later);
        t.handle(Event::InitApply(obs("b", "2", BOUND)), later);
        t.handle(Event::InitDone, later);
        assert!(text(&registry).contains("latency_count 1\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_recreated_object_is_measured_again_and_deletes_match_uids() {
        let (t, registry) = tracker();
        let now = Instant::now();
        t.handle(Event::Apply(obs("a", "1", BOUND)), now);
        t.sent(key("a"), now);
        t.handle(Event::Apply(obs("a", "2", BOUND)), now + Duration::from_secs(1));
        assert!(text(&registry).contains("latency_count 1\n"));
        // A late delete of the old object leaves the new one.
        t.handle(Event::Delete(obs("a", "1", BOUND)), now);
        assert!(t.is_reached(&key("a")));
        t.handle(Event::Delete(obs("a", "2", BOUND)), now);
        assert!(!t.is_reached(&key("a")));
        assert_eq!(t.reached_count(), 0);
        assert!(t.all_reached([].iter()));
        assert!(!t.all_reached([key("a")].iter()));
    }

    fn ts(s: &str) -> Time {
        Time(s.parse::<Timestamp>().unwrap())
    }

    #[test]
    fn pods_are_reached_when_scheduled() {
        let mut pod = Pod {
            metadata: ObjectMeta { creation_timestamp: Some(ts("2025-01-01T00:00:00Z")), ..Default::default() },
            spec: Some(PodSpec::default()),
            ..Default::default()
        };
        assert_eq!(pod.reached(), None);
        let condition = |status: &str| PodCondition {
            type_: "PodScheduled".into(),
            status: status.into(),
            last_transition_time: Some(ts("2025-01-01T00:00:03Z")),
            ..Default::default()
        };
        pod.status = Some(PodStatus { conditions: Some(vec![condition("False")]), ..Default::default() });
        assert_eq!(pod.reached(), None);
        pod.status = Some(PodStatus { conditions: Some(vec![condition("True")]), ..Default::default() });
        assert_eq!(pod.reached(), Some(Some(Duration::from_secs(3))));
        pod.status = None;
        pod.spec.as_mut().unwrap().node_name = Some("n".into());
        assert_eq!(pod.reached(), Some(None));
    }

    #[test]
    fn capacity_requests_are_reached_when_acknowledged() {
        let mut cr = CapacityRequest::new(
            "c",
            CapacityRequestSpec { need: Need { count: 1, cpu: Default::default(), memory: Default::default() } },
        );
        cr.metadata.creation_timestamp = Some(ts("2025-01-01T00:00:00Z"));
        assert_eq!(cr.reached(), None);
        let status = |phase, at: Option<&str>| CapacityRequestStatus {
            phase: Some(phase),
            acknowledged_at: at.map(ts),
            ..Default::default()
        };
        cr.status = Some(status(CapacityRequestPhase::Pending, None));
        assert_eq!(cr.reached(), None);
        cr.status = Some(status(CapacityRequestPhase::Failed, None));
        assert_eq!(cr.reached(), None);
        cr.status = Some(status(CapacityRequestPhase::Acknowledged, Some("2025-01-01T00:00:02Z")));
        assert_eq!(cr.reached(), Some(Some(Duration::from_secs(2))));
        cr.status = Some(status(CapacityRequestPhase::Fulfilled, None));
        assert_eq!(cr.reached(), Some(None));
        cr.status = Some(status(CapacityRequestPhase::Failed, Some("2025-01-01T00:00:01Z")));
        assert_eq!(cr.reached(), Some(Some(Duration::from_secs(1))));
    }
}
