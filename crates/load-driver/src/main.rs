use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    scaletest_core::component::exit(scaletest_load_driver::run(scaletest_load_driver::Args::parse()).await)
}
