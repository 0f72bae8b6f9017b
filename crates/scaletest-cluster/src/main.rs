use std::process::ExitCode;

use clap::Parser;
use scaletest_cluster::ClusterArgs;

#[tokio::main]
async fn main() -> ExitCode {
    scaletest_core::telemetry::init();
    match scaletest_cluster::run(ClusterArgs::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
