//! Graceful stop on SIGINT and SIGTERM, served by the context's tokio runtime (see
//! [`StreamingConfig::stop_on_signal`](crate::StreamingConfig::stop_on_signal)).

use tokio::runtime::Handle;

use crate::error::Result;

/// Listens for the stop signals on `runtime`: the first calls `stop` (on a thread of
/// its own, since a graceful stop waits for the batches), the second exits the process
/// at once. The context passes its graceful stop, so this module need not know it.
pub(crate) fn stop_on_signal(runtime: &Handle, stop: impl FnOnce() + Send + 'static) -> Result<()> {
    let _entered = runtime.enter();
    let mut signals = Signals::install()?;
    runtime.spawn(async move {
        let first = signals.next().await;
        tracing::warn!(
            "received {}: stopping gracefully (everything received is processed first); send it again to exit at once",
            first.name
        );
        let stopping = std::thread::Builder::new()
            .name("dstream-signal-stop".into())
            .spawn(stop);
        if let Err(e) = stopping {
            tracing::error!("cannot start a thread to stop the streaming context: {e}");
        }
        let second = signals.next().await;
        tracing::error!(
            "received {} during the graceful stop: exiting now; batches not yet processed are lost",
            second.name
        );
        std::process::exit(128 + second.number);
    });
    Ok(())
}

/// A signal that was received.
struct Received {
    name: &'static str,
    number: i32,
}

#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| crate::error::Error::Runtime {
                what: "the signal handler",
                reason: format!("{name}: {e}"),
            })
        };
        Ok(Signals {
            interrupt: install(SignalKind::interrupt(), "SIGINT")?,
            terminate: install(SignalKind::terminate(), "SIGTERM")?,
        })
    }

    async fn next(&mut self) -> Received {
        tokio::select! {
            _ = self.interrupt.recv() => Received { name: "SIGINT", number: 2 },
            _ = self.terminate.recv() => Received { name: "SIGTERM", number: 15 },
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Result<Signals> {
        Ok(Signals)
    }

    async fn next(&mut self) -> Received {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
        Received {
            name: "Ctrl-C",
            number: 2,
        }
    }
}
