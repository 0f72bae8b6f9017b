//! `scaletest-runner`: one command for a whole scale-test run.

pub mod baseline;
pub mod cli;
pub mod estimate;
pub mod faults;
pub mod images;
pub mod invariants;
pub mod kube;
pub mod local;
pub mod prom;
pub mod report;
pub mod run;
pub mod saturation;
pub mod summary;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;

use cli::{Cli, Command};

/// Exit codes: what a CI job or a script branches on.
pub const EXIT_PASSED: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_REFUSED: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

pub async fn main(cli: Cli) -> ExitCode {
    scaletest_core::telemetry::init();
    let result = match cli.command {
        Command::Run(args) => match run::run(args).await {
            Ok(run::Outcome::Passed) => return ExitCode::from(EXIT_PASSED),
            Ok(run::Outcome::Failed) => return ExitCode::from(EXIT_FAILED),
            Ok(run::Outcome::Interrupted) => return ExitCode::from(EXIT_INTERRUPTED),
            Err(e) => Err(e),
        },
        Command::Validate { paths } => validate(paths),
        Command::Estimate { profile, duration } => {
            scaletest_core::profile::load(&profile).map_err(Into::into).map(|p| {
                let e = estimate::estimate(&p, duration.unwrap_or_else(|| p.estimate_duration()));
                println!("{}", e.describe(&p));
                let (line, fits) = estimate::fit(&p);
                println!("{line}");
                match fits {
                    Ok(()) => {
                        println!("fits costEstimate ({} vCPU, {} GB)", p.cost_estimate.vcpu, p.cost_estimate.memory_gb)
                    }
                    Err(short) => println!("does not fit costEstimate: {short}"),
                }
            })
        }
        Command::Baseline { summary, results } => baseline::update(&summary, &results).map(|d| println!("{d:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_REFUSED)
        }
    }
}

fn validate(paths: Vec<PathBuf>) -> anyhow::Result<()> {
    let paths = if paths.is_empty() { vec![PathBuf::from("profiles")] } else { paths };
    let mut bad = 0;
    for p in paths {
        let files = if p.is_dir() {
            match scaletest_core::profile::load_dir(&p) {
                Ok(v) => v.into_iter().map(|(path, _)| path).collect(),
                Err(e) => {
                    eprintln!("{e}");
                    bad += 1;
                    continue;
                }
            }
        } else {
            vec![p]
        };
        for f in files {
            match scaletest_core::profile::load(&f) {
                Ok(pr) => match estimate::fit(&pr) {
                    (line, Ok(())) => println!("ok   {} ({}): {line}", f.display(), pr.name),
                    (line, Err(short)) => {
                        eprintln!(
                            "{}: costEstimate: expected the vCPU and memory the run needs by the footprint rule, found {short}\n  {line}",
                            f.display()
                        );
                        bad += 1;
                    }
                },
                Err(e) => {
                    eprintln!("{e}");
                    bad += 1;
                }
            }
        }
    }
    anyhow::ensure!(bad == 0, "{bad} invalid profile(s)");
    Ok(())
}
