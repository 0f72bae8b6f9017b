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

    #[test]
    fn mutated_smoke_profile_never_panics(cut in 0usize..2000, insert in "[ :\\-\\[\\]{}0-9a-z\\n]{0,12}") {
        let smoke = include_str!("../../../profiles/smoke.yaml");
        let at = smoke.char_indices().map(|(i, _)| i).nth(cut % smoke.chars().count()).unwrap_or(0);
        check(&format!("{}{}{}", &smoke[..at], insert, &smoke[at..]));
    }
}
