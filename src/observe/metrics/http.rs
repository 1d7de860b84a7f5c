//! The `GET /metrics` endpoint, in the Prometheus text format.
//!
//! A minimal HTTP/1.x responder on tokio instead of the exporter's own
//! listener: that one binds inside `PrometheusBuilder::build()` without
//! telling which port it got (tests bind port 0), leaves behind an upkeep
//! task that never stops (many proxies run in one test process), and
//! renders without a hook to refresh the state-derived metrics first. One
//! request per connection, answered and closed: all a scraper needs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::proxy::Shared;

/// The only path served.
const METRICS_PATH: &str = "/metrics";
/// Longest request head read; a longer one is refused.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// A client that has not sent its request head by then is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `[metrics] listen`, if set. Called before the proxy starts
/// anything else, so that a taken port fails its start with a clear
/// message instead of leaving the endpoint silently missing; the listener
/// goes to [`super::spawn`].
pub async fn bind(listen: Option<&str>) -> Result<Option<TcpListener>> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("[metrics] listen = \"{listen}\" is not an IP:port address"))?;
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot serve metrics on {addr} ([metrics] listen): is something else using that port?"
        )
    })?;
    Ok(Some(listener))
}

/// Answers scrapes on `listener` until `stop` changes.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(answer(stream, Arc::clone(&shared)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Reads one request and writes its response.
async fn answer(mut stream: TcpStream, shared: Arc<Shared>) {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(_)) | Err(_) => return,
    };
    let response = match classify(head.as_deref()) {
        Request::Metrics => {
            let rendered =
                tokio::task::spawn_blocking(move || shared.observer.metrics().render(&shared))
                    .await;
            match rendered {
                Ok(body) => response("200 OK", PROMETHEUS_TEXT, &[], &body),
                Err(_) => plain("500 Internal Server Error", &[], "rendering failed\n"),
            }
        }
        Request::WrongPath => plain(
            "404 Not Found",
            &[],
            &format!("metrics are served at {METRICS_PATH}\n"),
        ),
        Request::WrongMethod => plain(
            "405 Method Not Allowed",
            &["Allow: GET"],
            "only GET is served\n",
        ),
        Request::Malformed => plain("400 Bad Request", &[], "malformed request\n"),
    };
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

/// The request head (up to its blank line, or whatever came before the
/// client stopped sending); `None` when it exceeds [`MAX_REQUEST_HEAD`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head_complete(&head) {
        if head.len() > MAX_REQUEST_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(head))
}

fn head_complete(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// `GET /metrics` (any query string).
    Metrics,
    /// A GET of another path.
    WrongPath,
    /// Another method.
    WrongMethod,
    /// No parsable request line, or a head too long.
    Malformed,
}

fn classify(head: Option<&[u8]>) -> Request {
    let Some(head) = head else {
        return Request::Malformed;
    };
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Request::Malformed;
    };
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Request::Malformed;
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Malformed;
    }
    if method != "GET" {
        return Request::WrongMethod;
    }
    let path = target.split('?').next().unwrap_or_default();
    if path == METRICS_PATH {
        Request::Metrics
    } else {
        Request::WrongPath
    }
}

fn plain(status: &str, headers: &[&str], body: &str) -> Vec<u8> {
    response(status, "text/plain; charset=utf-8", headers, body)
}

fn response(status: &str, content_type: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Request {
        classify(Some(text.as_bytes()))
    }

    #[test]
    fn requests_are_classified() {
        assert_eq!(
            request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics
        );
        assert_eq!(request("GET /metrics?x=1 HTTP/1.0\n\n"), Request::Metrics);
        assert_eq!(request("GET / HTTP/1.1\r\n\r\n"), Request::WrongPath);
        assert_eq!(
            request("POST /metrics HTTP/1.1\r\n\r\n"),
            Request::WrongMethod
        );
        assert_eq!(request("GET /metrics\r\n\r\n"), Request::Malformed);
        assert_eq!(request("GET /metrics SSH-2.0\r\n\r\n"), Request::Malformed);
        assert_eq!(request(""), Request::Malformed);
        assert_eq!(classify(None), Request::Malformed);
        assert_eq!(
            classify(Some(b"\xff\xfe /metrics HTTP/1.1\r\n")),
            Request::Malformed
        );
    }

    #[test]
    fn a_head_is_complete_at_its_blank_line() {
        assert!(!head_complete(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"));
        assert!(head_complete(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(head_complete(b"GET /metrics HTTP/1.0\n\n"));
    }

    #[test]
    fn responses_carry_length_and_extra_headers() {
        let text = String::from_utf8(plain("405 Method Not Allowed", &["Allow: GET"], "no\n"))
            .expect("ascii");
        assert_eq!(
            text,
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 3\r\nConnection: close\r\nAllow: GET\r\n\r\nno\n"
        );
    }
}
