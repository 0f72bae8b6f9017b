//! SIGTERM / Ctrl-C handling: the first signal cancels the returned token so the
//! process drains; a second one exits at once.

use tokio_util::sync::CancellationToken;

/// Exit code after a forced (second-signal) exit: 128 + SIGINT.
pub const FORCED_EXIT_CODE: i32 = 130;

/// Spawns the signal listener; cancel the token yourself to shut down otherwise.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut signals = 0;
        loop {
            let name = wait_for_signal().await;
            signals += 1;
            if signals == 1 {
                tracing::info!(signal = name, "shutting down (send again to force)");
                t.cancel();
            } else {
                tracing::warn!(signal = name, "second signal: exiting now");
                std::process::exit(FORCED_EXIT_CODE);
            }
        }
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}
