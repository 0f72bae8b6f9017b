//! The rules a parsed profile must meet beyond its types.

use std::collections::HashMap;
use std::time::Duration;

use promql_parser::parser::value::ValueType;

use super::*;
use crate::quantity;

const POSITIVE_INTEGER: &str = "a positive integer";
const POSITIVE_NUMBER: &str = "a positive number";
const POSITIVE_DURATION: &str = "a positive duration such as \"30s\" or \"2m\"";

impl Profile {
    /// Checks every rule that the types alone do not; returns the first violation.
    ///
    /// Does no I/O: the file-name and template checks are [`parse_str`]'s.
    pub fn validate(&self) -> Result<(), Violation> {
        validate_name(&self.name)?;
        self.validate_kwok()?;
        self.validate_harness()?;
        self.validate_load_profile()?;
        self.validate_sut()?;
        validate_slos(&self.slos())?;
        self.validate_cost()?;
        positive_duration("durations.soak", self.durations.soak)?;
        positive_duration("durations.steadyStateTimeout", self.durations.steady_state_timeout)?;
        self.validate_faults()
    }

    fn validate_kwok(&self) -> Result<(), Violation> {
        positive("kwok.clusterCount", u64::from(self.kwok.cluster_count))?;
        if let Some(per) = self.kwok.nodes_per_controller {
            positive("kwok.nodesPerController", u64::from(per))?;
        }
        Ok(())
    }

    fn validate_harness(&self) -> Result<(), Violation> {
        let density = self.harness.density;
        if !(1..=Harness::MAX_DENSITY).contains(&density) {
            return Err(Violation::new(
                "harness.density",
                format!("Pods per fake Node in 1..={}", Harness::MAX_DENSITY),
                density,
            ));
        }
        positive("harness.binderWorkers", u64::from(self.harness.binder_workers))
    }

    fn validate_load_profile(&self) -> Result<(), Violation> {
        let lp = &self.load_profile;
        positive("loadProfile.objectsPerCluster", lp.objects_per_cluster)?;
        positive("loadProfile.namespaces", u64::from(lp.namespaces))?;

        quantity_rule(
            "loadProfile.pod.cpu",
            "a positive CPU quantity such as \"100m\" or \"0.5\"",
            &lp.pod.cpu,
            lp.pod.cpu_millis(),
        )?;
        quantity_rule(
            "loadProfile.pod.memory",
            "a positive memory quantity such as \"128Mi\" or \"1Gi\"",
            &lp.pod.memory,
            lp.pod.memory_bytes(),
        )?;

        match (lp.kind, &lp.template) {
            (ObjectKind::Manifest, None) => {
                return Err(Violation::new(
                    "loadProfile.template",
                    "a manifest template path (kind: manifest needs one)",
                    "nothing",
                ));
            }
            (ObjectKind::Manifest, Some(t)) if t.as_os_str().is_empty() => {
                return Err(Violation::new(
                    "loadProfile.template",
                    "a manifest template path (kind: manifest needs one)",
                    "an empty path",
                ));
            }
            (kind @ (ObjectKind::Pods | ObjectKind::CapacityRequests), Some(t)) => {
                return Err(Violation::new(
                    "loadProfile.template",
                    format!("no template (only kind: manifest uses one; kind is {kind})"),
                    format!("{:?}", t.display().to_string()),
                ));
            }
            _ => {}
        }

        positive_number("loadProfile.qps", lp.qps)?;
        positive("loadProfile.burst", u64::from(lp.burst))?;
        self.validate_phases()
    }

    fn validate_phases(&self) -> Result<(), Violation> {
        let lp = &self.load_profile;
        match lp.phases.first() {
            None => {
                return Err(Violation::new(
                    "loadProfile.phases",
                    "at least one phase (ramp, steady or burst)",
                    "an empty list",
                ));
            }
            Some(Phase::Steady(_)) => {
                return Err(Violation::new(
                    "loadProfile.phases[0]",
                    "a ramp or burst phase first (a steady phase has nothing to hold yet)",
                    "steady",
                ));
            }
            Some(_) => {}
        }
        for (i, phase) in lp.phases.iter().enumerate() {
            let at = |key: &str| format!("loadProfile.phases[{i}].{}.{key}", phase.kind());
            match phase {
                Phase::Ramp(ramp) => positive_number(&at("rate"), ramp.rate)?,
                Phase::Steady(steady) => {
                    positive_duration(&at("duration"), steady.duration)?;
                    let churn = steady.churn_percent;
                    if !(churn.is_finite() && (0.0..=100.0).contains(&churn)) {
                        return Err(Violation::new(at("churnPercent"), "a percentage in 0..=100", churn));
                    }
                    positive_duration(&at("churnInterval"), steady.churn_interval)?;
                }
                Phase::Burst(burst) => {
                    if !(1..=lp.objects_per_cluster).contains(&burst.count) {
                        return Err(Violation::new(
                            at("count"),
                            format!(
                                "an object count in 1..={} (loadProfile.objectsPerCluster)",
                                lp.objects_per_cluster
                            ),
                            burst.count,
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_sut(&self) -> Result<(), Violation> {
        match &self.sut {
            Sut::Reference(reference) => {
                positive("sut.reference.acknowledgeConcurrency", u64::from(reference.acknowledge_concurrency))?;
                positive_duration("sut.reference.cycleInterval", reference.cycle_interval)?;
                if self.harness.nodes == NodeSource::Sut {
                    return Err(Violation::new(
                        "harness.nodes",
                        "node-creator with the reference SUT (it publishes UpcomingNodes; `sut` is for a controller that makes Nodes itself)",
                        "sut",
                    ));
                }
                Ok(())
            }
            Sut::External(sut) => self.validate_external_sut(sut),
        }
    }

    fn validate_external_sut(&self, sut: &ExternalSut) -> Result<(), Violation> {
        if sut.command.is_empty() && sut.image.is_none() {
            return Err(Violation::new(
                "sut",
                "`reference`, or your controller's `command` (local target) and/or `image` (kube target)",
                "neither",
            ));
        }
        if let Some(program) = sut.command.first()
            && program.trim().is_empty()
        {
            return Err(Violation::new("sut.command[0]", "a program name or path", format!("{program:?}")));
        }
        if let Some(image) = &sut.image
            && (image.trim().is_empty() || image.contains(char::is_whitespace))
        {
            return Err(Violation::new("sut.image", "a container image reference", format!("{image:?}")));
        }
        let placeholders = |field: String, text: &str| {
            placeholders_in(text).map(|_| ()).map_err(|e| {
                Violation::new(field, format!("a value whose ${{...}} name one of {}", Placeholder::listed()), e.0)
            })
        };
        for (i, arg) in sut.command.iter().enumerate() {
            placeholders(format!("sut.command[{i}]"), arg)?;
        }
        for (name, value) in &sut.env {
            let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                return Err(Violation::new(
                    "sut.env",
                    "environment variable names of letters, digits and '_', not starting with a digit",
                    format!("{name:?}"),
                ));
            }
            placeholders(format!("sut.env.{name}"), value)?;
        }
        for (i, m) in sut.manifests.iter().enumerate() {
            if m.as_os_str().is_empty() {
                return Err(Violation::new(
                    format!("sut.manifests[{i}]"),
                    "a manifest file or directory",
                    "an empty path",
                ));
            }
        }
        let paths = [
            ("sut.metrics.path", sut.metrics.as_ref().map(|m| &m.path)),
            ("sut.readiness.path", sut.readiness.as_ref().map(|r| &r.path)),
        ];
        for (field, path) in paths {
            if let Some(path) = path
                && !path.starts_with('/')
            {
                return Err(Violation::new(field, "an HTTP path starting with '/'", format!("{path:?}")));
            }
        }
        if let Some(r) = &sut.resources {
            quantity_rule(
                "sut.resources.cpu",
                "a positive CPU quantity such as \"500m\" or \"1\"",
                &r.cpu,
                r.cpu_millis(),
            )?;
            quantity_rule(
                "sut.resources.memory",
                "a positive memory quantity such as \"512Mi\" or \"1Gi\"",
                &r.memory,
                r.memory_bytes(),
            )?;
        }
        match self.harness.nodes {
            NodeSource::Sut => {
                if self.harness.scheduler == Scheduler::PodShim {
                    return Err(Violation::new(
                        "harness.scheduler",
                        "kube-scheduler when the SUT makes the Nodes (harness.nodes: sut); pod-shim makes its own",
                        "pod-shim",
                    ));
                }
                if self.load_profile.kind == ObjectKind::CapacityRequests {
                    return Err(Violation::new(
                        "loadProfile.kind",
                        "pods or manifest when the SUT makes the Nodes (harness.nodes: sut): CapacityRequests are the node-creator contract",
                        "capacityRequests",
                    ));
                }
            }
            NodeSource::NodeCreator => {}
        }
        Ok(())
    }

    fn validate_cost(&self) -> Result<(), Violation> {
        let cost = &self.cost_estimate;
        let rate = cost.aws_spot_usd_per_hour;
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(Violation::new(
                "costEstimate.awsSpotUsdPerHour",
                "a non-negative number of US dollars per hour",
                rate,
            ));
        }
        positive_number("costEstimate.vcpu", cost.vcpu)?;
        positive_number("costEstimate.memoryGb", cost.memory_gb)?;
        if let Some(hours) = cost.hours {
            positive_number("costEstimate.hours", hours)?;
        }
        Ok(())
    }
}

impl Profile {
    /// Fault times fall within the soak (a runner `--duration` override sets
    /// `durations.soak` and validates again), each target runs in this profile.
    fn validate_faults(&self) -> Result<(), Violation> {
        let soak = self.durations.soak;
        let soak_text = humantime::format_duration(soak);
        for (i, fault) in self.faults.iter().enumerate() {
            let at = |key: &str| format!("faults[{i}].{key}");
            match (fault.at, fault.every) {
                (None, None) => {
                    return Err(Violation::new(
                        format!("faults[{i}]"),
                        "exactly one of `at` (an offset into the soak) or `every` (an interval)",
                        "neither",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(Violation::new(
                        at("every"),
                        "exactly one of `at` (an offset into the soak) or `every` (an interval)",
                        "both",
                    ));
                }
                (Some(offset), None) => {
                    let end = offset + fault.hold.unwrap_or_default();
                    if offset >= soak || end > soak {
                        return Err(Violation::new(
                            at("at"),
                            format!("an offset within the soak (durations.soak = {soak_text}), `for` included"),
                            humantime::format_duration(offset),
                        ));
                    }
                }
                (None, Some(every)) => {
                    if every.is_zero() || every > soak {
                        return Err(Violation::new(
                            at("every"),
                            format!("a positive interval no longer than the soak (durations.soak = {soak_text})"),
                            humantime::format_duration(every),
                        ));
                    }
                }
            }
            if let Some(needs) = fault.target.needs_scheduler()
                && needs != self.harness.scheduler
            {
                return Err(Violation::new(
                    at("target"),
                    format!(
                        "a component this profile runs ({} runs only with harness.scheduler: {needs}; it is {})",
                        fault.target, self.harness.scheduler
                    ),
                    fault.target,
                ));
            }
            if fault.target == FaultTarget::NodeCreator && self.harness.nodes == NodeSource::Sut {
                return Err(Violation::new(
                    at("target"),
                    "a component this profile runs (node-creator does not run with harness.nodes: sut)",
                    fault.target,
                ));
            }
            match (fault.action, fault.hold) {
                (FaultAction::Stop, None) => {
                    return Err(Violation::new(
                        at("for"),
                        "how long to hold the component stopped (action: stop needs it), e.g. \"10s\"",
                        "nothing",
                    ));
                }
                (FaultAction::Stop, Some(hold)) => {
                    positive_duration(&at("for"), hold)?;
                    if let Some(every) = fault.every
                        && hold >= every
                    {
                        return Err(Violation::new(
                            at("for"),
                            format!("a hold shorter than `every` ({})", humantime::format_duration(every)),
                            humantime::format_duration(hold),
                        ));
                    }
                }
                (action, Some(hold)) => {
                    return Err(Violation::new(
                        at("for"),
                        format!("no `for` (only action: stop takes one; action is {action})"),
                        humantime::format_duration(hold),
                    ));
                }
                (_, None) => {}
            }
            if let Some(clusters) = &fault.clusters {
                if clusters.is_empty() {
                    return Err(Violation::new(
                        at("clusters"),
                        "a non-empty list of cluster indices (leave it out for every cluster)",
                        "an empty list",
                    ));
                }
                let count = self.kwok.cluster_count;
                for (j, &c) in clusters.iter().enumerate() {
                    if c >= count {
                        return Err(Violation::new(
                            format!("faults[{i}].clusters[{j}]"),
                            format!("a cluster index in 0..{count} (kwok.clusterCount)"),
                            c,
                        ));
                    }
                    if clusters[..j].contains(&c) {
                        return Err(Violation::new(
                            format!("faults[{i}].clusters[{j}]"),
                            "an index not already listed",
                            c,
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn validate_name(name: &str) -> Result<(), Violation> {
    let dns_label = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if dns_label {
        Ok(())
    } else {
        Err(Violation::new(
            "name",
            format!("a lowercase DNS label (a-z, 0-9, '-') of 1..={MAX_NAME_LEN} characters"),
            format!("{name:?}"),
        ))
    }
}

pub(super) fn validate_slos(slos: &[Slo]) -> Result<(), Violation> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, slo) in slos.iter().enumerate() {
        let mut chars = slo.name.chars();
        let identifier = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            return Err(Violation::new(
                format!("slos[{i}].name"),
                "letters, digits and '_', starting with a letter (a summary.json key)",
                format!("{:?}", slo.name),
            ));
        }
        if let Some(first) = seen.insert(&slo.name, i) {
            return Err(Violation::new(
                format!("slos[{i}].name"),
                "a name no other SLO uses",
                format!("{:?} (also slos[{first}].name)", slo.name),
            ));
        }
        if slo.query.trim().is_empty() {
            return Err(Violation::new(format!("slos[{i}].query"), "a PromQL expression", "an empty string"));
        }
        parse_query(i, slo)?;
        if !slo.threshold.is_finite() {
            return Err(Violation::new(format!("slos[{i}].threshold"), "a finite number", slo.threshold));
        }
    }
    Ok(())
}

/// What `$window` stands for while parsing: the runner puts the run's length there
/// (`3600s`), and the parser must see a duration where the user wrote the placeholder.
pub(super) const WINDOW_WHILE_PARSING: &str = "1h";

/// An SLO query that parses as PromQL, so a typo is refused before a run, not after its soak.
fn parse_query(i: usize, slo: &Slo) -> Result<(), Violation> {
    let query = slo.query.replace(SLO_WINDOW, WINDOW_WHILE_PARSING);
    let refuse = |message: String| {
        Violation::new(
            format!("slos[{i}].query"),
            format!("a PromQL expression (SLO {:?})", slo.name),
            format!("{:?}: {message}", slo.query),
        )
    };
    let expr = promql_parser::parser::parse(&query).map_err(refuse)?;
    // The SLO is judged on one number: a range or a string would fail only after the soak.
    match expr.value_type() {
        ValueType::Vector | ValueType::Scalar => Ok(()),
        other => Err(refuse(format!("it evaluates to a {other}, and an SLO needs a vector or a scalar"))),
    }
}

/// A quantity that parses (the parse error itself only repeats the input) and is > 0.
fn quantity_rule(
    field: &str,
    expected: &str,
    text: &str,
    parsed: Result<u64, quantity::QuantityError>,
) -> Result<(), Violation> {
    match parsed {
        Ok(value) if value > 0 => Ok(()),
        _ => Err(Violation::new(field, expected, format!("{text:?}"))),
    }
}

fn positive(field: &str, value: u64) -> Result<(), Violation> {
    if value > 0 { Ok(()) } else { Err(Violation::new(field, POSITIVE_INTEGER, value)) }
}

fn positive_number(field: &str, value: f64) -> Result<(), Violation> {
    if value.is_finite() && value > 0.0 { Ok(()) } else { Err(Violation::new(field, POSITIVE_NUMBER, value)) }
}

fn positive_duration(field: &str, value: Duration) -> Result<(), Violation> {
    if value.is_zero() {
        Err(Violation::new(field, POSITIVE_DURATION, humantime::format_duration(value)))
    } else {
        Ok(())
    }
}
