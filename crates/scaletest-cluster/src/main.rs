use std::process::ExitCode;

use clap::Parser;
use scaletest_cluster::ClusterArgs;

#[tokio::main]
async fn main() -> ExitCode {
    scaletest_core::telemetry::init();
    scaletest_core::component::exit(scaletest_cluster::run(ClusterArgs::parse()).await)
}
