//! The page's HTTP/1.1 server (hyper), on the context's tokio runtime: the page itself
//! and its JSON API (`api`).

use std::convert::Infallible;
use std::sync::Weak;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::{StatusSource, api, local_address};
use crate::error::{Error, Result};
use crate::scheduler::history::RETAINED_BATCHES;
use crate::time::duration_millis;

/// The page: HTML, CSS and JavaScript in one file, compiled into the library.
const PAGE: &str = include_str!("page.html");

/// How long the accept loop waits after a failed accept (out of file descriptors,
/// say) before trying again, so that it does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

pub(super) fn serve(
    listener: std::net::TcpListener,
    tokio: &tokio::runtime::Handle,
    context: Weak<dyn StatusSource>,
) -> Result<()> {
    let address = local_address(&listener)?;
    let _entered = tokio.enter();
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| Error::StatusPageAddress {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
    tokio.spawn(accept_connections(listener, context));
    Ok(())
}

async fn accept_connections(listener: tokio::net::TcpListener, context: Weak<dyn StatusSource>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("status page: cannot accept a connection: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let context = context.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(request, context.clone()));
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("status page: a connection ended with an error: {e}");
            }
        });
    }
}

async fn respond(
    request: Request<Incoming>,
    context: Weak<dyn StatusSource>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::GET {
        return Ok(text(
            StatusCode::METHOD_NOT_ALLOWED,
            "the status page answers GET only\n",
        ));
    }
    let Some(shared) = context.upgrade() else {
        return Ok(text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the streaming context is gone\n",
        ));
    };
    let interval_ms = duration_millis(shared.batch_interval());
    let response = match request.uri().path() {
        "/" | "/index.html" => reply(StatusCode::OK, "text/html; charset=utf-8", PAGE.into()),
        "/api/v1/summary" => {
            let history = shared.history().snapshot(0);
            json(&api::Summary::new(
                shared.status_name(),
                interval_ms,
                shared.parallelism(),
                &history,
                shared.receiver_statuses().len(),
                shared.state_sizes().len(),
            ))
        }
        "/api/v1/batches" => {
            let limit = limit(request.uri().query()).unwrap_or(RETAINED_BATCHES);
            let history = shared.history().snapshot(limit);
            json(&api::Batches::new(&history, interval_ms))
        }
        "/api/v1/receivers" => json(&shared.receiver_statuses()),
        "/api/v1/streams" => json(&shared.state_sizes()),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: the status page serves /, /api/v1/summary, /api/v1/batches, /api/v1/receivers and /api/v1/streams\n",
        ),
    };
    Ok(response)
}

/// The `limit=N` of a query string.
fn limit(query: Option<&str>) -> Option<usize> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("limit="))
        .and_then(|n| n.parse().ok())
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode the answer: {e}\n"),
        ),
    }
}

fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(
        status,
        "text/plain; charset=utf-8",
        message.as_bytes().to_vec(),
    )
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_read_from_the_query() {
        assert_eq!(limit(Some("limit=20")), Some(20));
        assert_eq!(limit(Some("x=1&limit=3")), Some(3));
        assert_eq!(limit(Some("limit=many")), None);
        assert_eq!(limit(None), None);
    }
}
