use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    scaletest_runner::main(scaletest_runner::cli::Cli::parse()).await
}
