use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    scaletest_core::component::exit(scaletest_pod_shim::run(scaletest_pod_shim::Args::parse()).await)
}
