//! The library every scaletest binary shares.
//!
//! - [`crd`]: the CapacityRequest / UpcomingNode contract with the system under test.
//! - [`density`] and [`quantity`]: how many Pods a fake Node holds and what it advertises.
//! - [`profile`]: the `profiles/*.yaml` schema and its validation; [`manifests`]: the
//!   Kubernetes objects a profile applies to each cluster.
//! - [`footprint`]: what a simulated cluster and Prometheus cost, measured; every
//!   budget and the chart's resources derive from it.
//! - [`metrics`]: one Prometheus registry per process, served at `/metrics`.
//! - [`client`], [`shutdown`], [`telemetry`]: process plumbing.

pub mod client;
pub mod component;
pub mod constants;
pub mod crd;
pub mod density;
pub mod endpoints;
pub mod footprint;
pub mod http;
pub mod manifests;
pub mod metrics;
pub mod profile;
pub mod quantity;
pub mod shutdown;
pub mod telemetry;
