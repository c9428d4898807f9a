//! The HTTP/1.1 endpoint that serves the Prometheus exposition at
//! `/metrics`, on hyper ([`serve`]), with bounds on what a client can
//! hold: connections at once, time to send a request, a connection's age.
//! What it serves comes from a scrape function (the daemon passes
//! [`super::prometheus::render`] over the registry's list).

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::{HttpService, service_fn};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::{poll_fn, ready};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, warn};

/// The endpoint's limits, in one place so that tests can shorten them.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// How long a client may take to send a request head, counted from
    /// when its connection is accepted or its previous response was sent:
    /// an idle keep-alive connection is closed after this long too.
    header_timeout: Duration,
    /// How long a connection is served before it is asked to close once
    /// its response in progress, if any, is sent.
    max_age: Duration,
    /// How long after that a connection still busy (its client does not
    /// take its responses, say) is cut off.
    close_grace: Duration,
    /// Connections served at once; more are closed at once. A scraper
    /// needs one.
    max_connections: usize,
}

/// The limits [`serve`] applies.
const LIMITS: Limits = Limits {
    header_timeout: Duration::from_secs(5),
    max_age: Duration::from_secs(30),
    close_grace: Duration::from_secs(5),
    max_connections: 64,
};
/// The largest request head (request line and headers); a longer one is
/// answered 431.
const MAX_HEAD: usize = 8 * 1024;
/// How long, after the last response, to read and discard what the client
/// still sends before closing (see [`close`]).
const LINGER: Duration = Duration::from_secs(1);
/// How long to wait after an accept error that is not one connection's
/// (out of file descriptors, say) before accepting again, so the loop does
/// not spin while the cause lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The `Content-Type` of the text exposition (format 0.0.4).
const METRICS_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// The `Content-Type` of error bodies.
const TEXT_TYPE: &str = "text/plain; charset=utf-8";

/// What a scrape calls for the exposition.
type Scrape = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `GET /metrics` (and `HEAD`) on `listener` with hyper's HTTP/1.1
/// server until the task is dropped/aborted; each scrape calls `scrape`
/// for the body. Connections may be kept alive between requests.
pub(crate) async fn serve(listener: TcpListener, scrape: Arc<dyn Fn() -> String + Send + Sync>) {
    serve_with(listener, scrape, LIMITS).await;
}

/// [`serve`] within these limits.
async fn serve_with(listener: TcpListener, scrape: Scrape, limits: Limits) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEAD)
        .keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Owned by this future, so dropping it ends the connections too.
    let mut connections = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                while connections.try_join_next().is_some() {}
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    debug!(%peer, "metrics endpoint: too many connections, closing a new one");
                    continue;
                };
                let scrape = Arc::clone(&scrape);
                let service = service_fn(move |request: Request<Incoming>| {
                    ready(Ok::<_, Infallible>(respond(&request, &*scrape)))
                });
                let connection = http.serve_connection(TokioIo::new(stream), service);
                connections.spawn(async move {
                    run(connection, limits).await;
                    drop(permit);
                });
            }
            Err(err) => {
                warn!("metrics endpoint: accepting a connection failed: {err}");
                if !is_connection_error(&err) {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

/// Whether an accept error concerns only the connection being accepted, so
/// the next accept may well succeed.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// Serves one connection until the client closes it, sends nothing for
/// [`Limits::header_timeout`], or it is [`Limits::max_age`] old: then it
/// closes after its response in progress, or [`Limits::close_grace`] later
/// at the latest.
async fn run<S>(mut connection: http1::Connection<TokioIo<TcpStream>, S>, limits: Limits)
where
    S: HttpService<Incoming, ResBody = String> + Unpin,
    S::Future: Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Without hyper's shutdown, to close the socket as `close` does.
    let served = tokio::select! {
        served = poll_fn(|cx| connection.poll_without_shutdown(cx)) => Some(served),
        () = tokio::time::sleep(limits.max_age) => None,
    };
    let served = match served {
        Some(served) => served,
        None => {
            Pin::new(&mut connection).graceful_shutdown();
            let serving = poll_fn(|cx| connection.poll_without_shutdown(cx));
            match timeout(limits.close_grace, serving).await {
                Ok(served) => served,
                Err(_elapsed) => {
                    let busy = limits.max_age + limits.close_grace;
                    debug!("metrics endpoint: a connection still busy after {busy:?}, cut off");
                    return;
                }
            }
        }
    };
    // What goes wrong is the client's: a timeout, a malformed request
    // (answered 400 or 431 by hyper), a reset.
    if let Err(err) = served {
        debug!("metrics endpoint: serving a connection ended: {err}");
    }
    close(connection.into_parts().io.into_inner()).await;
}

/// Closes a connection after its last response. Closing a socket with
/// unread input sends a reset, which can destroy the response before the
/// client reads it (hyper does just that); so signal the end, then read and
/// discard a little, briefly.
async fn close(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0; 1024];
    let _ = timeout(LINGER, async {
        let mut discarded = 0;
        while discarded < 64 * 1024 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    })
    .await;
}

/// The response to a request: the exposition for `GET /metrics` (hyper
/// sends no body for `HEAD`), 404 for another path, 405 for another
/// method.
fn respond(request: &Request<Incoming>, scrape: &dyn Fn() -> String) -> Response<String> {
    if request.uri().path() != "/metrics" {
        let body = "not found: corral serves its metrics at /metrics\n";
        return text(StatusCode::NOT_FOUND, TEXT_TYPE, body.to_owned());
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let body = "method not allowed: /metrics answers GET and HEAD\n";
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, TEXT_TYPE, body.to_owned());
        let allow = HeaderValue::from_static("GET, HEAD");
        response.headers_mut().insert(header::ALLOW, allow);
        return response;
    }
    text(StatusCode::OK, METRICS_TYPE, scrape())
}

/// A response with this status and body (hyper adds its length).
fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<String> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let content_type = HeaderValue::from_static(content_type);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    /// A scrape's body: what the endpoint serves does not matter to it.
    const METRICS: &str = "# HELP corral_plugin_up Whether the plugin's worker serves calls\n\
        # TYPE corral_plugin_up gauge\n\
        corral_plugin_up{plugin=\"hello\"} 1\n\
        # EOF\n";

    /// Serves `scrape` on a loopback port within `limits`; the server ends
    /// when the returned handle is aborted.
    async fn server(scrape: Scrape, limits: Limits) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (addr, tokio::spawn(serve_with(listener, scrape, limits)))
    }

    /// [`METRICS`] as a scrape.
    fn metrics_scrape() -> Scrape {
        Arc::new(|| METRICS.to_owned())
    }

    /// Sends `pieces` to `addr`, pausing between them, and returns
    /// everything the server answers until it closes.
    async fn exchange(addr: SocketAddr, pieces: &[&[u8]]) -> String {
        let talk = async {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            for piece in pieces {
                stream.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap();
            String::from_utf8(answer).unwrap()
        };
        timeout(Duration::from_secs(10), talk)
            .await
            .expect("the server answers within 10 s")
    }

    /// Reads one response on a kept-alive connection: its head (status
    /// line and headers) and its body, `Content-Length` long. `None` when
    /// the server closed the connection first.
    async fn read_response(stream: &mut TcpStream) -> Option<(String, String)> {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            match stream.read(&mut byte).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => head.push(byte[0]),
            }
        }
        let head = String::from_utf8(head).unwrap();
        let length = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .expect("a content-length")
            .parse()
            .unwrap();
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.ok()?;
        Some((head, String::from_utf8(body).unwrap()))
    }

    /// The status line, the headers (hyper writes their names in lower
    /// case) and the body of a response.
    fn split(response: &str) -> (&str, Vec<&str>, &str) {
        let (head, body) = response.split_once("\r\n\r\n").expect("a blank line");
        let mut lines = head.split("\r\n");
        (lines.next().unwrap(), lines.collect(), body)
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let (addr, server) = server(metrics_scrape(), LIMITS).await;
        let metrics = METRICS;
        let length = format!("content-length: {}", metrics.len());

        let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let get = exchange(addr, &[request]).await;
        let (status, headers, body) = split(&get);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            headers.contains(&"content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{headers:?}"
        );
        assert!(headers.contains(&length.as_str()), "{headers:?}");
        assert!(headers.contains(&"connection: close"), "{headers:?}");
        assert_eq!(body, metrics);

        let head = exchange(
            addr,
            &[b"HEAD /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"],
        )
        .await;
        let (status, headers, body) = split(&head);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(headers.contains(&length.as_str()), "{headers:?}");
        assert_eq!(body, "");

        let http10 = exchange(addr, &[b"GET /metrics HTTP/1.0\r\n\r\n"]).await;
        assert_eq!(split(&http10).0, "HTTP/1.0 200 OK");
        assert_eq!(split(&http10).2, metrics);

        let pieces: [&[u8]; 3] = [
            b"GET /metrics?x=1 HT",
            b"TP/1.1\r\nHost: x\r",
            b"\nConnection: close\r\n\r\n",
        ];
        let slow = exchange(addr, &pieces).await;
        assert_eq!(split(&slow).0, "HTTP/1.1 200 OK");
        assert_eq!(split(&slow).2, metrics);

        let missing = exchange(addr, &[b"GET /other HTTP/1.1\r\nConnection: close\r\n\r\n"]).await;
        let (status, _, body) = split(&missing);
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        assert!(body.contains("/metrics"), "{body}");

        let post = exchange(
            addr,
            &[b"POST /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"],
        )
        .await;
        let (status, headers, _) = split(&post);
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        assert!(headers.contains(&"allow: GET, HEAD"), "{headers:?}");

        // hyper answers what it cannot parse itself, and closes.
        let garbage = exchange(addr, &[b"\x16\x03\x01garbage\r\n\r\n"]).await;
        assert_eq!(split(&garbage).0, "HTTP/1.1 400 Bad Request");

        let huge = vec![b'a'; 3 * MAX_HEAD];
        let oversized = exchange(addr, &[b"GET /metrics HTTP/1.1\r\nX: ", &huge]).await;
        assert_eq!(
            split(&oversized).0,
            "HTTP/1.1 431 Request Header Fields Too Large"
        );

        // A head cut short by the end of the client's sending is dropped
        // at once, unanswered.
        let mut cut = TcpStream::connect(addr).await.unwrap();
        cut.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        cut.shutdown().await.unwrap();
        let mut answer = String::new();
        timeout(Duration::from_secs(2), cut.read_to_string(&mut answer))
            .await
            .expect("the server closes within 2 s")
            .unwrap();
        assert_eq!(answer, "");

        // Neither a client still sending nor one gone keeps others waiting.
        let mut unfinished = TcpStream::connect(addr).await.unwrap();
        unfinished
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        drop(TcpStream::connect(addr).await.unwrap());

        let again = exchange(addr, &[b"GET /metrics HTTP/1.0\r\n\r\n"]).await;
        assert_eq!(split(&again).2, metrics);
        drop(unfinished);
        server.abort();
    }

    #[tokio::test]
    async fn keeps_a_connection_alive_for_the_next_scrape() {
        let (addr, server) = server(metrics_scrape(), LIMITS).await;
        let metrics = METRICS;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        for _ in 0..3 {
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let (head, body) = timeout(Duration::from_secs(10), read_response(&mut stream))
                .await
                .unwrap()
                .expect("an answer on the same connection");
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert_eq!(body, metrics);
        }
        // Two requests at once are answered in order.
        stream
            .write_all(
                b"GET /other HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let (head, _) = read_response(&mut stream).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
        let (head, body) = read_response(&mut stream).await.unwrap();
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        assert_eq!(body, metrics);
        assert!(read_response(&mut stream).await.is_none());
        server.abort();
    }

    #[tokio::test]
    async fn input_left_unread_does_not_cut_the_response_short() {
        // Closing with unread input resets the connection and drops what
        // is still unsent: a body bigger than the socket buffers shows
        // whether closing waits for the response to be taken.
        let big = "x".repeat(32 << 20);
        let body = big.clone();
        let (addr, server) = server(Arc::new(move || body.clone()), LIMITS).await;
        let junk = vec![b'j'; 32 * 1024];
        let request = b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n";
        let answer = exchange(addr, &[request, &junk]).await;
        assert_eq!(split(&answer).0, "HTTP/1.1 200 OK");
        assert!(split(&answer).2 == big, "the body is cut short");
        server.abort();
    }

    /// Limits that end a connection quickly.
    const QUICK: Limits = Limits {
        header_timeout: Duration::from_millis(200),
        max_age: Duration::from_secs(30),
        close_grace: Duration::from_secs(5),
        max_connections: 64,
    };

    /// Waits until the server closes `stream`, at most 5 s, and returns
    /// how long that took and what it sent before.
    async fn until_closed(stream: &mut TcpStream) -> (Duration, Vec<u8>) {
        let start = tokio::time::Instant::now();
        let mut answer = Vec::new();
        timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("the server closes within 5 s")
            .unwrap();
        (start.elapsed(), answer)
    }

    #[tokio::test]
    async fn a_silent_or_slow_client_is_closed_after_the_header_timeout() {
        let (addr, server) = server(metrics_scrape(), QUICK).await;

        let mut silent = TcpStream::connect(addr).await.unwrap();
        let (after, answer) = until_closed(&mut silent).await;
        assert!(answer.is_empty(), "{}", answer.escape_ascii());
        assert!(after >= Duration::from_millis(150), "{after:?}");

        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        let (_, answer) = until_closed(&mut slow).await;
        assert!(answer.is_empty(), "{}", answer.escape_ascii());

        // A kept-alive connection left idle is closed after as long.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        read_response(&mut idle).await.expect("an answer");
        let (after, answer) = until_closed(&mut idle).await;
        assert!(answer.is_empty(), "{}", answer.escape_ascii());
        assert!(after >= Duration::from_millis(150), "{after:?}");
        server.abort();
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_closed_at_once() {
        let limits = Limits {
            header_timeout: Duration::from_secs(30),
            max_connections: 2,
            ..LIMITS
        };
        let (addr, server) = server(metrics_scrape(), limits).await;
        let first = TcpStream::connect(addr).await.unwrap();
        let second = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;

        let mut third = TcpStream::connect(addr).await.unwrap();
        let mut answer = Vec::new();
        let read = timeout(Duration::from_secs(2), third.read_to_end(&mut answer))
            .await
            .expect("the third connection is closed at once");
        assert!(read.is_err() || answer.is_empty(), "{read:?}");

        // A connection that ends gives its place back.
        drop(first);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answer = exchange(addr, &[b"GET /metrics HTTP/1.0\r\n\r\n"]).await;
        assert_eq!(split(&answer).0, "HTTP/1.0 200 OK");
        drop(second);
        server.abort();
    }

    #[tokio::test]
    async fn an_old_connection_is_closed_after_its_response() {
        let limits = Limits {
            max_age: Duration::from_millis(300),
            close_grace: Duration::from_millis(300),
            ..LIMITS
        };
        let (addr, server) = server(metrics_scrape(), limits).await;
        let metrics = METRICS;
        let mut busy = TcpStream::connect(addr).await.unwrap();
        let start = tokio::time::Instant::now();
        let mut answered = 0;
        while start.elapsed() < Duration::from_secs(5) {
            let request = busy.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").await;
            match read_response(&mut busy).await {
                Some((_, body)) if request.is_ok() => {
                    assert_eq!(body, metrics);
                    answered += 1;
                }
                _ => break,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let after = start.elapsed();
        assert!(answered >= 2, "{answered} answers");
        assert!(after < Duration::from_secs(2), "closed after {after:?}");
        server.abort();
    }

    #[tokio::test]
    async fn a_client_that_does_not_take_its_responses_is_cut_off() {
        let limits = Limits {
            header_timeout: Duration::from_secs(30),
            max_age: Duration::from_millis(300),
            close_grace: Duration::from_millis(300),
            ..LIMITS
        };
        let big = "x".repeat(1 << 20);
        let (addr, server) = server(Arc::new(move || big.clone()), limits).await;
        let mut stuck = TcpStream::connect(addr).await.unwrap();
        let requests = b"GET /metrics HTTP/1.1\r\n\r\n".repeat(64);
        stuck.write_all(&requests).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut answer = Vec::new();
        let read = timeout(Duration::from_secs(5), stuck.read_to_end(&mut answer))
            .await
            .expect("the server has closed the connection");
        assert!(answer.len() < 64 << 20, "{} bytes, {read:?}", answer.len());
        server.abort();
    }
}
