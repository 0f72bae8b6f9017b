//! The `profiles/*.yaml` schema, its loading and its validation.
//!
//! A profile says what a run simulates (`kwok`, `harness`), how it loads the system under
//! test (`loadProfile`), which system that is (`sut`), what the run must meet (`slos`),
//! what it costs on AWS spot (`costEstimate`) and which components fail mid-soak
//! (`faults`). Keys are camelCase; unknown keys are errors.
//!
//! [`load`] / [`parse_str`] parse a profile and then check it with [`Profile::validate`].
//! Every error prints on one line and names the file, the field path and the form
//! expected, e.g.
//! `profiles/x.yaml: loadProfile.objectsPerCluster: expected a positive integer, found 0`.
//!
//! ```yaml
//! name: smoke
//! kwok: {clusterCount: 1}
//! loadProfile:
//!   kind: pods
//!   objectsPerCluster: 200
//!   phases:
//!     - ramp: {rate: 50}
//!     - steady: {duration: 30s, churnPercent: 10, churnInterval: 10s}
//! costEstimate: {awsSpotUsdPerHour: 0.95, vcpu: 3.4, memoryGb: 10.5}
//! ```

mod derived;
mod error;
mod load;
mod schema;
mod sut;
mod validate;

pub use error::{ProfileError, Violation};
pub use load::{load, load_dir, parse_str};
pub use schema::*;
pub use sut::*;

/// Environment variable that carries the simulated cluster's kubeconfig path to a
/// user-supplied system under test ([`Sut::External`]).
pub const SUT_KUBECONFIG_ENV: &str = "SCALETEST_KUBECONFIG";

/// Placeholder for the range of an SLO query (`rate(x[$window])`): the runner puts the
/// whole run in its place, so a verdict covers every observation of the run, and a
/// soak longer than a fixed window cannot leave a rare event's histogram without data.
pub const SLO_WINDOW: &str = "$window";

/// Longest profile name. Run ids are `YYYYMMDD-HHMMSS-<name>` (16 + name characters) and
/// end up in the `scaletest-run` label, whose values are at most 63 characters.
pub const MAX_NAME_LEN: usize = 47;

/// Histograms the default SLOs read (base names; the queries use their `_bucket` series).
pub const SUT_CYCLE_DURATION_METRIC: &str = "scaletest_sut_cycle_duration_seconds";
pub const SUT_ROLLUP_DURATION_METRIC: &str = "scaletest_sut_rollup_duration_seconds";
pub const SUT_ACKNOWLEDGE_DURATION_METRIC: &str = "scaletest_sut_acknowledge_duration_seconds";
pub const BINDING_LATENCY_METRIC: &str = "scaletest_load_driver_binding_latency_seconds";
/// The harness's own autoscaler KPI: a Pod's first Unschedulable mark to bound.
pub const TIME_TO_CAPACITY_METRIC: &str = "scaletest_load_driver_time_to_capacity_seconds";

#[cfg(test)]
mod tests;
