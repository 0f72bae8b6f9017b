use std::process::ExitCode;

use clap::Parser;
use scaletest_sut::Args;

#[tokio::main]
async fn main() -> ExitCode {
    scaletest_core::component::exit(scaletest_sut::run(Args::parse()).await)
}
