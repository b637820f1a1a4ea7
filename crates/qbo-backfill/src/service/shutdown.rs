//! The process's shutdown signal: Ctrl-C or SIGTERM asks every run to stop gracefully.

use tokio_util::sync::CancellationToken;

/// Raised on Ctrl-C or SIGTERM (a service manager, `docker stop`): stop gracefully. A second
/// Ctrl-C exits at once with status 130.
pub fn shutdown_signal() -> CancellationToken {
    let interrupt = CancellationToken::new();
    {
        let interrupt = interrupt.clone();
        tokio::spawn(async move {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let terminated = async {
                match terminate.as_mut() {
                    Some(signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { return },
                () = terminated => {}
            }
            tracing::warn!(
                "Interrupted: finishing the pages in flight, then stopping (Ctrl-C again to abort)"
            );
            interrupt.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        });
    }
    interrupt
}
