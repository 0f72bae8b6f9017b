//! Numbers derived from a profile: totals, Nodes, kwok controllers, cost.

use std::time::Duration;

use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr, VectorSelector};
use promql_parser::util::{ExprVisitor, walk_expr};

use super::{ControlPlane, Profile, SLO_WINDOW, Slo, Sut, default_external_slos, default_slos};

impl Profile {
    /// `harness.controlPlane`, else `lean` for the reference SUT, whose API use is known,
    /// and `full` for a user's controller, which may rely on any API group or controller.
    pub fn control_plane(&self) -> ControlPlane {
        self.harness.control_plane.unwrap_or(match self.sut {
            Sut::Reference(_) => ControlPlane::Lean,
            Sut::External(_) => ControlPlane::Full,
        })
    }

    /// The SLOs the run is judged by: the profile's own, else the defaults for its SUT.
    pub fn slos(&self) -> Vec<Slo> {
        match (&self.slos, &self.sut) {
            (Some(slos), _) => slos.clone(),
            (None, Sut::Reference(_)) => default_slos(),
            (None, Sut::External(_)) => default_external_slos(),
        }
    }

    /// The metric names (or `__name__` regexes) the SLOs read, for a Prometheus that keeps
    /// only what the run reads. A query that does not parse (refused by validation) adds none.
    pub fn slo_metrics(&self) -> Vec<String> {
        let mut names = Names(Vec::new());
        for slo in self.slos() {
            let query = slo.query.replace(SLO_WINDOW, super::validate::WINDOW_WHILE_PARSING);
            if let Ok(expr) = promql_parser::parser::parse(&query) {
                let _ = walk_expr(&mut names, &expr);
            }
        }
        names.0.sort();
        names.0.dedup();
        names.0
    }

    /// Objects across every cluster at steady state.
    pub fn total_objects(&self) -> u64 {
        u64::from(self.kwok.cluster_count).saturating_mul(self.load_profile.objects_per_cluster)
    }

    /// Fake Nodes one cluster needs at steady state: ceil(objects / density).
    pub fn nodes_per_cluster(&self) -> u64 {
        self.load_profile.objects_per_cluster.div_ceil(u64::from(self.harness.density.max(1)))
    }

    /// Fake Nodes across every cluster at steady state.
    pub fn total_nodes(&self) -> u64 {
        u64::from(self.kwok.cluster_count).saturating_mul(self.nodes_per_cluster())
    }

    /// kwok controllers one cluster runs: ceil(nodes / nodesPerController), at least 1.
    pub fn kwok_controllers_per_cluster(&self) -> u64 {
        match self.kwok.nodes_per_controller {
            Some(per) if per > 0 => self.nodes_per_cluster().div_ceil(u64::from(per)).max(1),
            _ => 1,
        }
    }

    /// Estimated USD for a run lasting `run`: `costEstimate.awsSpotUsdPerHour` × hours.
    pub fn estimated_cost_usd(&self, run: Duration) -> f64 {
        self.cost_estimate.aws_spot_usd_per_hour * run.as_secs_f64() / 3600.0
    }

    /// The run length to estimate with when none is given: `costEstimate.hours`, else
    /// `durations.soak`.
    pub fn estimate_duration(&self) -> Duration {
        self.cost_estimate
            .hours
            .filter(|h| h.is_finite() && *h > 0.0)
            .map_or(self.durations.soak, |h| Duration::from_secs_f64(h * 3600.0))
    }
}

/// Collects the metric names of every selector in a PromQL expression.
struct Names(Vec<String>);

impl Names {
    fn add(&mut self, vs: &VectorSelector) {
        self.0.extend(vs.name.clone());
        for m in &vs.matchers.matchers {
            match &m.op {
                MatchOp::Equal | MatchOp::Re(_) if m.name == "__name__" => self.0.push(m.value.clone()),
                _ => {}
            }
        }
    }
}

impl ExprVisitor for Names {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        match expr {
            Expr::VectorSelector(vs) => self.add(vs),
            Expr::MatrixSelector(ms) => self.add(&ms.vs),
            _ => {}
        }
        Ok(true)
    }
}
