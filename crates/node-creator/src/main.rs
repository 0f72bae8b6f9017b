use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    scaletest_core::component::exit(scaletest_node_creator::run(scaletest_node_creator::Args::parse()).await)
}
