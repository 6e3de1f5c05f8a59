//! A fault-injecting HTTP/1.1 proxy for loopback tests (issue #6).
//!
//! It sits between hoist and moto_server or rclone serve s3, relays each request on a fresh
//! upstream connection, and, by rule or at random with a seed, injects: 503 SlowDown, 500
//! InternalError, a connection reset before the response (with or without forwarding the
//! request), a reset in the middle of the request or response body, a truncated response body,
//! a stall longer than hoist's timeouts, or a delay. It runs on its own thread and runtime and
//! stops when dropped. Every loop is bounded: it serves only 127.0.0.1.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    SlowDown,
    InternalError,
    /// Read the request, do not forward it, reset the connection.
    ResetBeforeResponse,
    /// Forward the request (the server acts on it), then reset instead of answering.
    ResetAfterForward,
    /// Reset after reading part of the request body.
    ResetMidRequest,
    /// Send the response head and part of the body, then reset.
    ResetMidResponse,
    /// Send the response head and part of the body, then close cleanly.
    TruncatedBody,
    /// Forward, but flip one byte of the response body (same length).
    CorruptBody,
    /// Answer CloudFront's 400 TooManyInvalidationsInProgress (its errors are wrapped in
    /// `<ErrorResponse>`, S3's are not).
    TooManyInvalidations,
    /// Say nothing for this long, then close.
    Stall(Duration),
    /// Forward normally after this long.
    Delay(Duration),
    /// Forward without the query's `start-after` (a store that ignores `StartAfter`).
    DropStartAfter,
    /// Send the response head and the first `fast` bytes of the body at once, then the rest at
    /// `per_second` bytes a second.
    Trickle {
        fast: usize,
        per_second: usize,
    },
}

/// The faults a seeded random run draws from.
pub const RANDOM_FAULTS: &[Fault] = &[
    Fault::SlowDown,
    Fault::InternalError,
    Fault::ResetBeforeResponse,
    Fault::ResetAfterForward,
    Fault::ResetMidRequest,
    Fault::ResetMidResponse,
    Fault::TruncatedBody,
];

/// What a rule sees of a request.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
}

impl RequestHead {
    /// The path, percent-decoded.
    pub fn path(&self) -> String {
        let path = self.target.split('?').next().unwrap_or("");
        percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned()
    }
}

type Matcher = Box<dyn Fn(&RequestHead) -> bool + Send + Sync>;

struct Rule {
    matcher: Matcher,
    fault: Fault,
    /// How many more times it fires (`None`: always).
    remaining: Option<usize>,
}

#[derive(Default)]
pub struct Plan {
    rules: Vec<Rule>,
    random: Option<(f64, u64)>,
    random_faults: Vec<Fault>,
    throttle_above: Option<usize>,
    latency: Option<Duration>,
}

impl Plan {
    pub fn new() -> Plan {
        Plan::default()
    }

    /// Faults `rate` of requests at random (deterministic per request number and seed).
    pub fn random(mut self, rate: f64, seed: u64) -> Plan {
        self.random = Some((rate, seed));
        self.random_faults = RANDOM_FAULTS.to_vec();
        self
    }

    /// Answers 503 SlowDown to every request that arrives while more than `places` requests
    /// are in flight: a store that sustains that many (S3 throttles by request rate; at a
    /// fixed round trip, a rate is a number in flight).
    pub fn throttle_above(mut self, places: usize) -> Plan {
        self.throttle_above = Some(places);
        self
    }

    /// Answers every request this long after its body arrived, a fault's answer too: a store
    /// across a network, where requests overlap as they do in CI.
    pub fn latency(mut self, latency: Duration) -> Plan {
        self.latency = Some(latency);
        self
    }

    pub fn rule(
        mut self,
        matcher: impl Fn(&RequestHead) -> bool + Send + Sync + 'static,
        fault: Fault,
        times: Option<usize>,
    ) -> Plan {
        self.rules.push(Rule {
            matcher: Box::new(matcher),
            fault,
            remaining: times,
        });
        self
    }
}

#[derive(Default, Debug)]
pub struct Stats {
    pub requests: AtomicUsize,
    pub faults: AtomicUsize,
    /// Requests between their head arriving and their answer sent, now and at most.
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub log: Mutex<Vec<String>>,
}

pub struct FaultProxy {
    addr: SocketAddr,
    pub stats: Arc<Stats>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:PORT`).
    pub fn start(upstream: &str, plan: Plan) -> FaultProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream is http://IP:PORT");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy addr");
        let stats = Arc::new(Stats::default());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let state = Arc::new(State {
            upstream,
            plan: Mutex::new(plan),
            counter: AtomicU64::new(0),
            stats: Arc::clone(&stats),
        });
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tokio listener");
                let serve = async {
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            continue;
                        };
                        let state = Arc::clone(&state);
                        tokio::spawn(async move {
                            let _ = serve_connection(client, state).await;
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = rx => {}
                }
            });
        });
        FaultProxy {
            addr,
            stats,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn faults(&self) -> usize {
        self.stats.faults.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct State {
    upstream: SocketAddr,
    plan: Mutex<Plan>,
    counter: AtomicU64,
    stats: Arc<Stats>,
}

impl State {
    fn choose(&self, head: &RequestHead) -> Option<Fault> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let mut plan = self.plan.lock().expect("plan lock");
        if plan
            .throttle_above
            .is_some_and(|places| self.stats.in_flight.load(Ordering::SeqCst) > places)
        {
            return Some(Fault::SlowDown);
        }
        for rule in plan.rules.iter_mut() {
            if rule.remaining == Some(0) || !(rule.matcher)(head) {
                continue;
            }
            if let Some(left) = rule.remaining.as_mut() {
                *left -= 1;
            }
            return Some(rule.fault);
        }
        let (rate, seed) = plan.random?;
        let roll = splitmix(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        if (roll % 10_000) as f64 / 10_000.0 < rate && !plan.random_faults.is_empty() {
            let kinds = &plan.random_faults;
            return Some(kinds[(splitmix(roll) % kinds.len() as u64) as usize]);
        }
        None
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A buffered reader over one side of a connection.
struct Conn<S> {
    stream: S,
    buffer: Vec<u8>,
}

impl<S: AsyncRead + Unpin> Conn<S> {
    async fn fill(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads up to and including the blank line ending a message head.
    async fn read_head(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                let head: Vec<u8> = self.buffer.drain(..end + 4).collect();
                return Ok(Some(head));
            }
            if self.buffer.len() > 1 << 20 {
                return Err(std::io::Error::other("head too large"));
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    async fn read_exact_bytes(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buffer.len() < n {
            if self.fill().await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buffer.drain(..n).collect())
    }

    async fn read_line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n") {
                return Ok(self.buffer.drain(..end + 2).collect());
            }
            if self.fill().await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads a body framed by `framing`, returning its raw bytes (chunk framing included).
    async fn read_body(&mut self, framing: Framing) -> std::io::Result<Vec<u8>> {
        match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(n) => self.read_exact_bytes(n).await,
            Framing::Chunked => {
                let mut raw = Vec::new();
                loop {
                    let line = self.read_line().await?;
                    let size_text = String::from_utf8_lossy(&line);
                    let size = usize::from_str_radix(
                        size_text.trim().split(';').next().unwrap_or("0"),
                        16,
                    )
                    .map_err(|_| std::io::Error::other("bad chunk size"))?;
                    raw.extend_from_slice(&line);
                    if size == 0 {
                        // Trailers, then the blank line.
                        loop {
                            let trailer = self.read_line().await?;
                            raw.extend_from_slice(&trailer);
                            if trailer == b"\r\n" {
                                return Ok(raw);
                            }
                        }
                    }
                    raw.extend(self.read_exact_bytes(size + 2).await?);
                }
            }
            Framing::UntilClose => {
                while self.fill().await? > 0 {}
                Ok(std::mem::take(&mut self.buffer))
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_headers(head: &[u8]) -> (String, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let start = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    (start, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn request_framing(headers: &[(String, String)]) -> Framing {
    if header(headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Framing::Chunked
    } else if let Some(n) = header(headers, "content-length").and_then(|v| v.parse().ok()) {
        Framing::Length(n)
    } else {
        Framing::None
    }
}

fn response_framing(method: &str, status: u16, headers: &[(String, String)]) -> Framing {
    if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
        return Framing::None;
    }
    if header(headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Framing::Chunked
    } else if let Some(n) = header(headers, "content-length").and_then(|v| v.parse().ok()) {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    }
}

fn error_response(status: u16, reason: &str, code: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn reset(stream: TcpStream) {
    // A zero linger sends RST at once; the deprecation is about the blocking non-zero case.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Counts one request in flight for as long as it lives (one turn of a connection's loop).
struct InFlight<'a>(&'a Stats);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a Stats) -> InFlight<'a> {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve_connection(client: TcpStream, state: Arc<State>) -> std::io::Result<()> {
    let mut client = Conn {
        stream: client,
        buffer: Vec::new(),
    };
    // Bounded: a test's client makes a finite number of requests on a connection.
    for _ in 0..100_000 {
        let Some(head) = client.read_head().await? else {
            return Ok(());
        };
        let (start, headers) = parse_headers(&head);
        let mut parts = start.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let request = RequestHead {
            method: method.clone(),
            target,
        };
        state.stats.requests.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight::enter(&state.stats);
        let fault = state.choose(&request);
        if let Some(fault) = fault {
            state.stats.faults.fetch_add(1, Ordering::SeqCst);
            state
                .stats
                .log
                .lock()
                .expect("log lock")
                .push(format!("{fault:?} {method} {}", request.target));
        }
        let framing = request_framing(&headers);
        if fault == Some(Fault::ResetMidRequest) {
            if let Framing::Length(n) = framing {
                let _ = client.read_exact_bytes(n / 2).await;
            }
            reset(client.stream).await;
            return Ok(());
        }
        let body = client.read_body(framing).await?;
        let latency = state.plan.lock().expect("plan lock").latency;
        if let Some(latency) = latency {
            tokio::time::sleep(latency).await;
        }
        match fault {
            Some(Fault::SlowDown) => {
                client
                    .stream
                    .write_all(&error_response(503, "Slow Down", "SlowDown"))
                    .await?;
                continue;
            }
            Some(Fault::InternalError) => {
                client
                    .stream
                    .write_all(&error_response(
                        500,
                        "Internal Server Error",
                        "InternalError",
                    ))
                    .await?;
                continue;
            }
            Some(Fault::TooManyInvalidations) => {
                let body = "<?xml version=\"1.0\"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>TooManyInvalidationsInProgress</Code><Message>injected by the test proxy</Message></Error></ErrorResponse>";
                let response = format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                client.stream.write_all(response.as_bytes()).await?;
                continue;
            }
            Some(Fault::ResetBeforeResponse) => {
                reset(client.stream).await;
                return Ok(());
            }
            Some(Fault::Stall(duration)) => {
                tokio::time::sleep(duration).await;
                return Ok(());
            }
            Some(Fault::Delay(duration)) => tokio::time::sleep(duration).await,
            _ => {}
        }

        // Forward on a fresh upstream connection, without `Expect` (the body is already here).
        let mut upstream = Conn {
            stream: TcpStream::connect(state.upstream).await?,
            buffer: Vec::new(),
        };
        let start = if fault == Some(Fault::DropStartAfter) {
            without_start_after(&start)
        } else {
            start.to_string()
        };
        let mut forwarded = format!("{start}\r\n");
        for (name, value) in &headers {
            if name.eq_ignore_ascii_case("expect") || name.eq_ignore_ascii_case("connection") {
                continue;
            }
            forwarded.push_str(&format!("{name}: {value}\r\n"));
        }
        forwarded.push_str("Connection: close\r\n\r\n");
        upstream.stream.write_all(forwarded.as_bytes()).await?;
        upstream.stream.write_all(&body).await?;

        let response_head = loop {
            let Some(head) = upstream.read_head().await? else {
                reset(client.stream).await;
                return Ok(());
            };
            let status = status_of(&head);
            if (100..200).contains(&status) {
                continue;
            }
            break head;
        };
        let (status_line, response_headers) = parse_headers(&response_head);
        let status = status_of(&response_head);
        let response_body = upstream
            .read_body(response_framing(&method, status, &response_headers))
            .await?;
        let close = header(&response_headers, "connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        match fault {
            Some(Fault::ResetAfterForward) => {
                reset(client.stream).await;
                return Ok(());
            }
            Some(Fault::Trickle { fast, per_second }) => {
                client.stream.write_all(&response_head).await?;
                let fast = fast.min(response_body.len());
                client.stream.write_all(&response_body[..fast]).await?;
                for piece in response_body[fast..].chunks(per_second.max(1)) {
                    client.stream.flush().await?;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    // A client that gave up closes the connection: stop quietly.
                    if client.stream.write_all(piece).await.is_err() {
                        return Ok(());
                    }
                }
                let _ = client.stream.shutdown().await;
                return Ok(());
            }
            Some(fault @ (Fault::ResetMidResponse | Fault::TruncatedBody)) => {
                client.stream.write_all(&response_head).await?;
                let half = response_body.len() / 2;
                client.stream.write_all(&response_body[..half]).await?;
                client.stream.flush().await?;
                if fault == Fault::ResetMidResponse {
                    reset(client.stream).await;
                } else {
                    let _ = client.stream.shutdown().await;
                }
                return Ok(());
            }
            _ => {}
        }
        let _ = status_line;
        let mut response_body = response_body;
        if fault == Some(Fault::CorruptBody)
            && let Some(byte) = response_body.get_mut(0)
        {
            *byte ^= 0x20;
        }
        client.stream.write_all(&response_head).await?;
        client.stream.write_all(&response_body).await?;
        if close
            || matches!(
                response_framing(&method, status, &response_headers),
                Framing::UntilClose
            )
        {
            let _ = client.stream.shutdown().await;
            return Ok(());
        }
    }
    Ok(())
}

fn status_of(head: &[u8]) -> u16 {
    String::from_utf8_lossy(head)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A request line without its query's `start-after` parameter.
fn without_start_after(start: &str) -> String {
    let mut parts = start.splitn(3, ' ');
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let Some((path, query)) = target.split_once('?') else {
        return start.to_string();
    };
    let query: Vec<&str> = query
        .split('&')
        .filter(|param| !param.starts_with("start-after="))
        .collect();
    format!("{method} {path}?{} {version}", query.join("&"))
}
