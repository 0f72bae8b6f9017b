//! Random input never panics the profile parser: it either parses or returns
//! an error naming the file.

use std::path::Path;

use proptest::prelude::*;

const ORIGIN: &str = "profiles/fuzz.yaml";

fn check(text: &str) {
    if let Err(e) = scaletest_core::profile::parse_str(text, Path::new(ORIGIN)) {
        assert!(e.to_string().starts_with(ORIGIN), "error does not name the file: {e}");
    }
}

/// YAML-shaped values built from the schema's own keys, so the fuzzer gets past
/// the first unknown field and into the validation rules.
fn yaml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n}")),
        "[a-z0-9.]{0,8}(m|Mi|Gi|s|ms)?",
        Just("null".to_string()),
        Just("true".to_string()),
        Just("\"\"".to_string()),
        prop::sample::select(vec!["sut", "kube-apiserver", "kine", "pod-shim", "kill", "stop", "restart", "-1"])
            .prop_map(str::to_string),
    ];
    let keys = prop::sample::select(vec![
        "name",
        "kwok",
        "clusterCount",
        "harness",
        "scheduler",
        "density",
        "loadProfile",
        "kind",
        "objectsPerCluster",
        "phases",
        "ramp",
        "rate",
        "steady",
        "duration",
        "churnPercent",
        "burst",
        "count",
        "pod",
        "cpu",
        "memory",
        "sut",
        "reference",
        "command",
        "slos",
        "query",
        "threshold",
        "costEstimate",
        "durations",
        "soak",
        "seed",
        "qps",
        "faults",
        "at",
        "every",
        "target",
        "action",
        "for",
        "clusters",
    ]);
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((keys.clone(), inner), 0..5).prop_map(|kv| {
                let body: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", body.join(", "))
            }),
        ]
    })
}

/// One `faults` entry from valid and invalid parts alike.
fn fault_entry() -> impl Strategy<Value = String> {
    let time = prop_oneof![
        Just(None),
        prop::sample::select(vec!["0s", "5s", "29s", "30s", "31s", "1m", "2h", "soon", "-1s", "0"]).prop_map(Some),
    ];
    let target = prop::sample::select(vec![
        "sut",
        "kube-apiserver",
        "kine",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "node-creator",
        "pod-shim",
        "load-driver",
        "etcd",
        "",
    ]);
    let action = prop::sample::select(vec!["kill", "stop", "restart", "pause", ""]);
    let clusters = prop_oneof![Just(None), prop::collection::vec(-1i64..3, 0..3).prop_map(Some)];
    (time.clone(), time.clone(), target, action, time, clusters).prop_map(
        |(at, every, target, action, hold, clusters)| {
            let mut kv = vec![format!("target: {target:?}"), format!("action: {action:?}")];
            kv.extend(at.map(|t| format!("at: {t}")));
            kv.extend(every.map(|t| format!("every: {t}")));
            kv.extend(hold.map(|t| format!("for: {t}")));
            kv.extend(clusters.map(|c| format!("clusters: {c:?}")));
            format!("{{{}}}", kv.join(", "))
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check(&text);
    }

    #[test]
    fn schema_shaped_yaml_never_panics(doc in yaml_value()) {
        check(&doc);
    }

    /// The smoke profile (1 cluster, 30 s soak) plus random `faults`: parses, or fails
    /// naming a `faults` field and the file.
    #[test]
    fn random_faults_fail_on_their_own_field(entries in prop::collection::vec(fault_entry(), 1..4)) {
        let smoke = include_str!("../../../profiles/smoke.yaml");
        let text = format!("{smoke}\nfaults:\n{}", entries.iter().map(|e| format!("  - {e}\n")).collect::<String>());
        let origin = "profiles/smoke.yaml";
        if let Err(e) = scaletest_core::profile::parse_str(&text, Path::new(origin)) {
            let shown = e.to_string();
            prop_assert!(shown.starts_with(origin), "{shown}");
            prop_assert!(e.field().is_some_and(|f| f.starts_with("faults")), "{shown}");
            prop_assert!(!shown.contains('\n'), "{shown}");
        }
    }

    #[test]
    fn mutated_smoke_profile_never_panics(cut in 0usize..2000, insert in "[ :\\-\\[\\]{}0-9a-z\\n]{0,12}") {
        let smoke = include_str!("../../../profiles/smoke.yaml");
        let at = smoke.char_indices().map(|(i, _)| i).nth(cut % smoke.chars().count()).unwrap_or(0);
        check(&format!("{}{}{}", &smoke[..at], insert, &smoke[at..]));
    }
}
