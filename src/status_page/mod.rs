//! The live status page: an HTML page in the spirit of Spark's Streaming tab and the
//! JSON API behind it, served over HTTP/1.1 from the context's tokio runtime.
//!
//! Everything it shows is read per request from stores that the stream keeps anyway
//! or that listeners fill ([`BatchHistory`](crate::scheduler::BatchHistory), the
//! receiver registry, the state stores' key counts), each under a short lock: the
//! batch path does no extra work for the page. The page is one self-contained HTML
//! file (inline CSS, inline JavaScript drawing inline SVG): nothing is fetched from
//! anywhere but this server.

#[cfg(feature = "status-page")]
mod api;
#[cfg(feature = "status-page")]
mod http;

use std::net::SocketAddr;
use std::sync::Weak;
use std::time::Duration;

use crate::dstream::StateSize;
use crate::error::{Error, Result};
use crate::scheduler::BatchHistory;
use crate::source::ReceiverStatus;

#[cfg_attr(not(feature = "status-page"), allow(dead_code))] // read by the page only
/// What the page shows of a context. The context implements it; the page holds it
/// weakly, so that serving the page never keeps a context alive.
pub(crate) trait StatusSource: Send + Sync + 'static {
    /// Where the context is in its life, in words: `initialized`, `active`,
    /// `stopping` or `stopped`.
    fn status_name(&self) -> &'static str;

    fn batch_interval(&self) -> Duration;

    /// The number of worker threads.
    fn parallelism(&self) -> usize;

    /// Recent batches.
    fn history(&self) -> &BatchHistory;

    /// Every receiver's status, in the order the streams were created.
    fn receiver_statuses(&self) -> Vec<ReceiverStatus>;

    /// Every stateful stream's number of keys.
    fn state_sizes(&self) -> Vec<StateSize>;
}

/// Binds the status page's listener. `address` is `host:port`, or a port alone for
/// `127.0.0.1:port`; port 0 takes any free port.
pub(crate) fn bind(address: &str) -> Result<std::net::TcpListener> {
    #[cfg(not(feature = "status-page"))]
    if !address.is_empty() {
        return Err(disabled());
    }
    let address = address.trim();
    let full = match address.parse::<u16>() {
        Ok(port) => format!("127.0.0.1:{port}"),
        Err(_) => address.to_string(),
    };
    let unavailable = |reason: String| Error::StatusPageAddress {
        address: full.clone(),
        reason,
    };
    let listener =
        std::net::TcpListener::bind(full.as_str()).map_err(|e| unavailable(e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(listener)
}

/// The address a bound listener listens on, as a URL names it.
pub(crate) fn local_address(listener: &std::net::TcpListener) -> Result<SocketAddr> {
    listener.local_addr().map_err(|e| Error::StatusPageAddress {
        address: "the bound listener".to_string(),
        reason: e.to_string(),
    })
}

/// Serves the page on `listener` from `tokio` until the runtime shuts down (when the
/// context stops).
pub(crate) fn serve(
    listener: std::net::TcpListener,
    tokio: &tokio::runtime::Handle,
    context: Weak<dyn StatusSource>,
) -> Result<()> {
    #[cfg(feature = "status-page")]
    return http::serve(listener, tokio, context);
    #[cfg(not(feature = "status-page"))]
    {
        let _ = (listener, tokio, context);
        Err(disabled())
    }
}

#[cfg(not(feature = "status-page"))]
fn disabled() -> Error {
    Error::FeatureDisabled {
        feature: "status-page",
        what: "the status page",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "status-page")]
    #[test]
    fn a_port_alone_binds_loopback() {
        let listener = bind("0").unwrap();
        assert!(local_address(&listener).unwrap().ip().is_loopback());
    }

    #[cfg(feature = "status-page")]
    #[test]
    fn a_taken_port_is_a_clear_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let err = bind(&address).unwrap_err();
        assert!(matches!(&err, Error::StatusPageAddress { address: a, .. } if *a == address));
        assert!(err.to_string().contains("port 0 to take any free port"));
    }

    #[cfg(not(feature = "status-page"))]
    #[test]
    fn without_the_feature_asking_for_the_page_says_so() {
        let err = bind("0").unwrap_err();
        assert!(matches!(
            err,
            Error::FeatureDisabled {
                feature: "status-page",
                ..
            }
        ));
    }
}
