//! The plugins' status as Prometheus metrics: the text exposition format
//! 0.0.4 ([`render`]) and a minimal HTTP/1.1 endpoint that serves it at
//! `/metrics` ([`serve`]). The endpoint is not a general HTTP server: one
//! request per connection, no request bodies, no keep-alive.

use corral_plugin_api::wire::{PluginInfo, PluginState};
use std::fmt::{self, Display, Write as _};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, warn};

/// The Prometheus text for these plugins.
pub(crate) fn render(plugins: &[PluginInfo]) -> String {
    let mut out = String::new();
    write_metrics(&mut out, plugins).expect("writing to a String does not fail");
    out
}

/// Writes every metric family of [`render`], in a fixed order.
fn write_metrics(out: &mut String, plugins: &[PluginInfo]) -> fmt::Result {
    let each = || plugins.iter();
    family(
        out,
        "corral_plugin_up",
        "gauge",
        "Whether the plugin's worker serves calls (state ready or unhealthy)",
        each().map(|plugin| {
            let up = matches!(plugin.state, PluginState::Ready | PluginState::Unhealthy);
            Sample::new(plugin, u8::from(up))
        }),
    )?;
    family(
        out,
        "corral_plugin_state",
        "gauge",
        "The plugin's lifecycle state, as a label",
        each().map(|plugin| Sample::new(plugin, 1).label("state", plugin.state.as_str())),
    )?;
    family(
        out,
        "corral_calls_total",
        "counter",
        "Calls of the plugin since the supervisor started",
        each().map(|plugin| Sample::new(plugin, plugin.calls)),
    )?;
    family(
        out,
        "corral_call_errors_total",
        "counter",
        "Failed calls of the plugin since the supervisor started, by error kind",
        each().flat_map(|plugin| {
            let errors = plugin.errors.iter();
            errors.map(move |(kind, count)| Sample::new(plugin, count).label("kind", kind))
        }),
    )?;
    family(
        out,
        "corral_calls_in_flight",
        "gauge",
        "Calls of the plugin in flight now",
        each().map(|plugin| Sample::new(plugin, plugin.in_flight)),
    )?;
    family(
        out,
        "corral_call_latency_seconds",
        "gauge",
        "Call latency quantiles as the supervisor sees them (within 10%)",
        each().flat_map(|plugin| {
            let quantiles = [
                ("0.5", plugin.latency_p50_us),
                ("0.99", plugin.latency_p99_us),
            ];
            quantiles.into_iter().filter_map(move |(quantile, us)| {
                Some(Sample::new(plugin, seconds(us?, 1_000_000)).label("quantile", quantile))
            })
        }),
    )?;
    family(
        out,
        "corral_restarts_total",
        "counter",
        "Times a worker of the plugin was started again after the first",
        each().map(|plugin| Sample::new(plugin, plugin.restarts)),
    )?;
    family(
        out,
        "corral_generation",
        "gauge",
        "The serving worker's generation: 1 for the first, one more per hot reload",
        each().map(|plugin| Sample::new(plugin, plugin.generation)),
    )?;
    family(
        out,
        "corral_uptime_seconds",
        "gauge",
        "Seconds the plugin's current worker has been ready",
        each().filter_map(|plugin| Some(Sample::new(plugin, seconds(plugin.uptime_ms?, 1_000)))),
    )?;
    family(
        out,
        "corral_rss_bytes",
        "gauge",
        "Resident memory of the plugin's serving worker",
        each().filter_map(|plugin| Some(Sample::new(plugin, plugin.rss_bytes?))),
    )?;
    family(
        out,
        "corral_cpu_percent",
        "gauge",
        "CPU use of the plugin's serving worker over the last 2 s, in percent of one core",
        each().filter_map(|plugin| Some(Sample::new(plugin, plugin.cpu_percent?))),
    )?;
    family(
        out,
        "corral_memory_limit_bytes",
        "gauge",
        "The plugin's memory limit",
        each().filter_map(|plugin| Some(Sample::new(plugin, plugin.memory_limit_bytes?))),
    )
}

/// One line of a metric family: its labels and value.
struct Sample<'a> {
    /// The `plugin` label.
    plugin: &'a str,
    /// A second label, if any.
    label: Option<(&'static str, &'a str)>,
    /// The value, formatted.
    value: String,
}

impl<'a> Sample<'a> {
    /// A sample of `plugin` with this value.
    fn new(plugin: &'a PluginInfo, value: impl Display) -> Self {
        Self {
            plugin: &plugin.name,
            label: None,
            value: value.to_string(),
        }
    }

    /// Adds the label `name="value"` after `plugin`.
    fn label(self, name: &'static str, value: &'a str) -> Self {
        Self {
            label: Some((name, value)),
            ..self
        }
    }
}

/// Writes a family's `# HELP` and `# TYPE` lines, then its samples.
fn family<'a>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl Iterator<Item = Sample<'a>>,
) -> fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} {kind}")?;
    for sample in samples {
        write!(out, "{name}{{plugin=\"{}\"", escape_label(sample.plugin))?;
        if let Some((label, value)) = sample.label {
            write!(out, ",{label}=\"{}\"", escape_label(value))?;
        }
        writeln!(out, "}} {}", sample.value)?;
    }
    Ok(())
}

/// A label value as the text format quotes it: `\`, `"` and newline
/// escaped.
fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `value` units as seconds, `per_second` being a power of ten: written
/// exactly in decimal, without going through a float.
fn seconds(value: u64, per_second: u64) -> String {
    let digits = per_second.ilog10() as usize;
    format!("{}.{:0digits$}", value / per_second, value % per_second)
}

/// How long a client may take to send its request head, and again to take
/// the response.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest request head read; a longer one is answered 400.
const MAX_HEAD: usize = 8 * 1024;
/// Connections served at once; more are closed at once. A scraper needs
/// one.
const MAX_CONNECTIONS: usize = 64;
/// How long to wait after an accept error that is not one connection's
/// (out of file descriptors, say) before accepting again, so the loop does
/// not spin while the cause lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// How long, after the response, to read and discard what the client still
/// sends before closing (see [`close`]).
const LINGER: Duration = Duration::from_secs(1);

/// The `Content-Type` of the text exposition format.
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The `Content-Type` of error bodies.
const TEXT_TYPE: &str = "text/plain; charset=utf-8";

/// Serves `GET /metrics` on `listener` until the task is dropped/aborted;
/// each scrape calls `scrape` for the body.
pub(crate) async fn serve(listener: TcpListener, scrape: Arc<dyn Fn() -> String + Send + Sync>) {
    // Owned by this future, so dropping it ends the connections too.
    let mut connections = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                while connections.try_join_next().is_some() {}
                if connections.len() >= MAX_CONNECTIONS {
                    debug!(%peer, "metrics endpoint: too many connections, closing a new one");
                    continue;
                }
                connections.spawn(answer(stream, Arc::clone(&scrape), IO_TIMEOUT));
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

/// Answers the one request of a connection, then closes it. A client that
/// sends nothing in `io_timeout`, or goes away, gets no answer.
async fn answer(
    mut stream: TcpStream,
    scrape: Arc<dyn Fn() -> String + Send + Sync>,
    io_timeout: Duration,
) {
    let response = match timeout(io_timeout, read_head(&mut stream)).await {
        Ok(Ok(Head::Complete(head))) => respond(&head, &*scrape),
        Ok(Ok(Head::Incomplete)) => bad_request(),
        Ok(Ok(Head::Nothing)) => return,
        Ok(Err(err)) => {
            debug!("metrics endpoint: reading a request failed: {err}");
            return;
        }
        Err(_elapsed) => {
            debug!("metrics endpoint: no request in {io_timeout:?}, closing");
            return;
        }
    };
    match timeout(io_timeout, stream.write_all(&response)).await {
        Ok(Ok(())) => close(stream).await,
        Ok(Err(err)) => debug!("metrics endpoint: writing a response failed: {err}"),
        Err(_elapsed) => debug!("metrics endpoint: response not taken in {io_timeout:?}"),
    }
}

/// Closes a connection after its response. Closing a socket with unread
/// input sends a reset, which can destroy the response before the client
/// reads it; so signal the end, then read and discard a little, briefly.
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

/// What a client sent before the end of its request head.
enum Head {
    /// The head, without the blank line that ends it.
    Complete(Vec<u8>),
    /// Bytes without an end: too many, or the client stopped sending.
    Incomplete,
    /// Not a byte.
    Nothing,
}

/// Reads the request head: up to the blank line (`\r\n\r\n`), at most
/// [`MAX_HEAD`] bytes with it.
async fn read_head(stream: &mut TcpStream) -> io::Result<Head> {
    let mut buffer = vec![0; MAX_HEAD];
    let mut len = 0;
    while len < MAX_HEAD {
        let n = stream.read(&mut buffer[len..]).await?;
        if n == 0 {
            return Ok(if len == 0 {
                Head::Nothing
            } else {
                Head::Incomplete
            });
        }
        // The end may straddle the previous read.
        let from = len.saturating_sub(3);
        len += n;
        if let Some(at) = buffer[from..len].windows(4).position(|w| w == b"\r\n\r\n") {
            buffer.truncate(from + at);
            return Ok(Head::Complete(buffer));
        }
    }
    Ok(Head::Incomplete)
}

/// The whole response to a request head (without its blank line).
fn respond(head: &[u8], scrape: &dyn Fn() -> String) -> Vec<u8> {
    let Some((method, path)) = request_line(head) else {
        return bad_request();
    };
    let with_body = method != "HEAD";
    if path != "/metrics" {
        let body = "not found: corral serves its metrics at /metrics\n";
        return response("404 Not Found", "", TEXT_TYPE, body, with_body);
    }
    if !matches!(method, "GET" | "HEAD") {
        let body = "method not allowed: /metrics answers GET and HEAD\n";
        let allow = "Allow: GET, HEAD\r\n";
        return response("405 Method Not Allowed", allow, TEXT_TYPE, body, with_body);
    }
    response("200 OK", "", METRICS_TYPE, &scrape(), with_body)
}

/// The answer to a malformed or oversized request.
fn bad_request() -> Vec<u8> {
    response("400 Bad Request", "", TEXT_TYPE, "bad request\n", true)
}

/// The method and path (without query) of a well-formed HTTP/1.x request
/// head; `None` when it is not one.
fn request_line(head: &[u8]) -> Option<(&str, &str)> {
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let well_formed = parts.next().is_none()
        && is_token(method)
        && target.starts_with('/')
        && !target.bytes().any(|b| b.is_ascii_control())
        && matches!(version, "HTTP/1.0" | "HTTP/1.1")
        && lines.all(|line| line.split_once(':').is_some_and(|(name, _)| is_token(name)));
    let path = target.split('?').next().unwrap_or(target);
    well_formed.then_some((method, path))
}

/// A response with `Content-Length` and `Connection: close`; `headers` are
/// extra header lines, each ending in CRLF. Without `with_body` (HEAD), the
/// length is still the body's.
fn response(
    status: &str,
    headers: &str,
    content_type: &str,
    body: &str,
    with_body: bool,
) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {headers}Connection: close\r\n\r\n",
        body.len()
    );
    if with_body {
        response.push_str(body);
    }
    response.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    /// A plugin with nothing known but its name and state.
    fn plugin(name: &str, state: PluginState) -> PluginInfo {
        PluginInfo {
            generation: 1,
            ..PluginInfo::new(name, format!("/plugins/{name}"), state)
        }
    }

    /// `hello`, ready with everything known, and `kv`, in backoff.
    fn two_plugins() -> Vec<PluginInfo> {
        let hello = PluginInfo {
            version: Some("1.2.0".to_owned()),
            pid: Some(4242),
            uptime_ms: Some(90_500),
            restarts: 2,
            generation: 3,
            rss_bytes: Some(10_485_760),
            cpu_percent: Some(12),
            memory_limit_bytes: Some(268_435_456),
            calls: 1000,
            errors: vec![("crashed".to_owned(), 1), ("timeout".to_owned(), 3)],
            in_flight: 2,
            latency_p50_us: Some(1_500),
            latency_p99_us: Some(2_250_000),
            ..plugin("hello", PluginState::Ready)
        };
        let kv = PluginInfo {
            restarts: 7,
            calls: 5,
            errors: vec![("unavailable".to_owned(), 5)],
            ..plugin("kv", PluginState::Backoff)
        };
        vec![hello, kv]
    }

    #[test]
    fn renders_two_plugins() {
        let expected = r#"# HELP corral_plugin_up Whether the plugin's worker serves calls (state ready or unhealthy)
# TYPE corral_plugin_up gauge
corral_plugin_up{plugin="hello"} 1
corral_plugin_up{plugin="kv"} 0
# HELP corral_plugin_state The plugin's lifecycle state, as a label
# TYPE corral_plugin_state gauge
corral_plugin_state{plugin="hello",state="ready"} 1
corral_plugin_state{plugin="kv",state="backoff"} 1
# HELP corral_calls_total Calls of the plugin since the supervisor started
# TYPE corral_calls_total counter
corral_calls_total{plugin="hello"} 1000
corral_calls_total{plugin="kv"} 5
# HELP corral_call_errors_total Failed calls of the plugin since the supervisor started, by error kind
# TYPE corral_call_errors_total counter
corral_call_errors_total{plugin="hello",kind="crashed"} 1
corral_call_errors_total{plugin="hello",kind="timeout"} 3
corral_call_errors_total{plugin="kv",kind="unavailable"} 5
# HELP corral_calls_in_flight Calls of the plugin in flight now
# TYPE corral_calls_in_flight gauge
corral_calls_in_flight{plugin="hello"} 2
corral_calls_in_flight{plugin="kv"} 0
# HELP corral_call_latency_seconds Call latency quantiles as the supervisor sees them (within 10%)
# TYPE corral_call_latency_seconds gauge
corral_call_latency_seconds{plugin="hello",quantile="0.5"} 0.001500
corral_call_latency_seconds{plugin="hello",quantile="0.99"} 2.250000
# HELP corral_restarts_total Times a worker of the plugin was started again after the first
# TYPE corral_restarts_total counter
corral_restarts_total{plugin="hello"} 2
corral_restarts_total{plugin="kv"} 7
# HELP corral_generation The serving worker's generation: 1 for the first, one more per hot reload
# TYPE corral_generation gauge
corral_generation{plugin="hello"} 3
corral_generation{plugin="kv"} 1
# HELP corral_uptime_seconds Seconds the plugin's current worker has been ready
# TYPE corral_uptime_seconds gauge
corral_uptime_seconds{plugin="hello"} 90.500
# HELP corral_rss_bytes Resident memory of the plugin's serving worker
# TYPE corral_rss_bytes gauge
corral_rss_bytes{plugin="hello"} 10485760
# HELP corral_cpu_percent CPU use of the plugin's serving worker over the last 2 s, in percent of one core
# TYPE corral_cpu_percent gauge
corral_cpu_percent{plugin="hello"} 12
# HELP corral_memory_limit_bytes The plugin's memory limit
# TYPE corral_memory_limit_bytes gauge
corral_memory_limit_bytes{plugin="hello"} 268435456
"#;
        let text = render(&two_plugins());
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            expected.lines().collect::<Vec<_>>()
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn unhealthy_is_up_and_stopped_is_down() {
        let plugins = [
            plugin("a", PluginState::Unhealthy),
            plugin("b", PluginState::Stopped),
        ];
        let text = render(&plugins);
        assert!(
            text.contains("\ncorral_plugin_up{plugin=\"a\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("\ncorral_plugin_up{plugin=\"b\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn no_plugins_render_headers_only() {
        let text = render(&[]);
        assert!(text.lines().all(|line| line.starts_with("# ")), "{text}");
        assert_eq!(text.lines().count(), 2 * 12);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("plain-name"), "plain-name");
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("line\nbreak"), r"line\nbreak");
        assert_eq!(escape_label("ünï"), "ünï");
    }

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(0, 1_000_000), "0.000000");
        assert_eq!(seconds(7, 1_000_000), "0.000007");
        assert_eq!(seconds(u64::MAX, 1_000), "18446744073709551.615");
        assert_eq!(seconds(1_500, 1_000), "1.500");
    }

    #[test]
    fn request_lines() {
        let cases: [(&[u8], _); 12] = [
            (
                b"GET /metrics HTTP/1.1\r\nHost: x",
                Some(("GET", "/metrics")),
            ),
            (b"GET /metrics?a=b HTTP/1.0", Some(("GET", "/metrics"))),
            (b"POST /other HTTP/1.1", Some(("POST", "/other"))),
            (b"HEAD / HTTP/1.1\r\nA: b\r\nC:", Some(("HEAD", "/"))),
            (b"", None),
            (b"GET /metrics", None),
            (b"GET  /metrics HTTP/1.1", None),
            (b"GET /metrics HTTP/2.0", None),
            (b"GET metrics HTTP/1.1", None),
            (b"G(T /metrics HTTP/1.1", None),
            (b"GET /metrics HTTP/1.1\r\nno colon", None),
            (b"GET /m\xff HTTP/1.1", None),
        ];
        for (head, want) in cases {
            assert_eq!(request_line(head), want, "{}", head.escape_ascii());
        }
    }

    /// Sends `request` to `addr` in the given pieces and returns everything
    /// the server answers until it closes.
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

    /// The status line, the headers and the body of a response.
    fn split(response: &str) -> (&str, Vec<&str>, &str) {
        let (head, body) = response.split_once("\r\n\r\n").expect("a blank line");
        let mut lines = head.split("\r\n");
        (lines.next().unwrap(), lines.collect(), body)
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scrape: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(|| render(&two_plugins()));
        let server = tokio::spawn(serve(listener, scrape));
        let metrics = render(&two_plugins());
        let length = format!("Content-Length: {}", metrics.len());

        let get = exchange(addr, &[b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"]).await;
        let (status, headers, body) = split(&get);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(headers.contains(&"Content-Type: text/plain; version=0.0.4; charset=utf-8"));
        assert!(headers.contains(&length.as_str()), "{headers:?}");
        assert!(headers.contains(&"Connection: close"));
        assert_eq!(body, metrics);

        let head = exchange(addr, &[b"HEAD /metrics HTTP/1.1\r\n\r\n"]).await;
        let (status, headers, body) = split(&head);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(headers.contains(&length.as_str()), "{headers:?}");
        assert_eq!(body, "");

        let pieces: [&[u8]; 3] = [b"GET /metrics?x=1 HT", b"TP/1.1\r\nHost: x\r", b"\n\r\n"];
        let slow = exchange(addr, &pieces).await;
        assert_eq!(split(&slow).0, "HTTP/1.1 200 OK");
        assert_eq!(split(&slow).2, metrics);

        let missing = exchange(addr, &[b"GET /other HTTP/1.1\r\n\r\n"]).await;
        let (status, _, body) = split(&missing);
        assert_eq!(status, "HTTP/1.1 404 Not Found");
        assert!(body.contains("/metrics"), "{body}");

        let post = exchange(addr, &[b"POST /metrics HTTP/1.1\r\n\r\n"]).await;
        let (status, headers, _) = split(&post);
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        assert!(headers.contains(&"Allow: GET, HEAD"), "{headers:?}");

        let garbage = exchange(addr, &[b"\x16\x03\x01garbage\r\n\r\n"]).await;
        assert_eq!(split(&garbage).0, "HTTP/1.1 400 Bad Request");

        let huge = vec![b'a'; 3 * MAX_HEAD];
        let oversized = exchange(addr, &[b"GET /metrics HTTP/1.1\r\nX: ", &huge]).await;
        assert_eq!(split(&oversized).0, "HTTP/1.1 400 Bad Request");

        // A head cut short by the end of the client's sending gets a 400.
        let mut cut = TcpStream::connect(addr).await.unwrap();
        cut.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        cut.shutdown().await.unwrap();
        let mut answer = String::new();
        timeout(Duration::from_secs(10), cut.read_to_string(&mut answer))
            .await
            .expect("the server answers within 10 s")
            .unwrap();
        assert_eq!(split(&answer).0, "HTTP/1.1 400 Bad Request");

        // Neither a client still sending nor one gone keeps others waiting.
        let mut unfinished = TcpStream::connect(addr).await.unwrap();
        unfinished
            .write_all(b"GET /metrics HTTP/1.1\r\n")
            .await
            .unwrap();
        drop(TcpStream::connect(addr).await.unwrap());

        let again = exchange(addr, &[b"GET /metrics HTTP/1.1\r\n\r\n"]).await;
        assert_eq!(split(&again).2, metrics);
        drop(unfinished);
        server.abort();
    }

    #[tokio::test]
    async fn input_left_unread_does_not_cut_the_response_short() {
        // Closing with unread input resets the connection and drops what
        // is still unsent: a body bigger than the socket buffers shows
        // whether `close` lingers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let big = "x".repeat(32 << 20);
        let body = big.clone();
        let server = tokio::spawn(serve(listener, Arc::new(move || body.clone())));
        let junk = vec![b'j'; 32 * 1024];
        let answer = exchange(addr, &[b"GET /metrics HTTP/1.1\r\n\r\n", &junk]).await;
        assert_eq!(split(&answer).0, "HTTP/1.1 200 OK");
        assert!(split(&answer).2 == big, "the body is cut short");
        server.abort();
    }

    #[tokio::test]
    async fn a_silent_client_is_closed_after_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let scrape: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(String::new);
        let server = answer(stream, scrape, Duration::from_millis(50));
        timeout(Duration::from_secs(5), server)
            .await
            .expect("the server gives up after its timeout");
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty(), "{}", answer.escape_ascii());
    }
}
