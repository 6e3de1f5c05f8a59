//! A TCP proxy on loopback that adds a fixed network latency: the same model as
//! `bench/delay_proxy.py` (whose docstring states it), at a fraction of its CPU.
//!
//!     hoist-bench-delay-proxy --upstream 127.0.0.1:9000 --rtt-ms 20 [--listen 127.0.0.1:0]
//!                             [--window-kib 1024] [--port-file F]
//!
//! Every byte is forwarded half the round trip after it was read, in each direction, in order;
//! a new connection waits one round trip (its handshake) before its first bytes leave; each
//! direction buffers at most a window of delayed bytes. It works below HTTP, so a client's
//! `Expect: 100-continue`, connection reuse and requests in flight cost what they would over
//! such a path. One thread: relaying is cheap, and the benchmark's cores belong to the tools
//! and the server.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

const CHUNK: usize = 64 * 1024;

struct Args {
    upstream: String,
    listen: String,
    rtt: Duration,
    window: usize,
    port_file: Option<String>,
}

fn args() -> Args {
    let mut upstream = None;
    let mut listen = "127.0.0.1:0".to_string();
    let mut rtt = None;
    let mut window = 1024 * 1024;
    let mut port_file = None;
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--upstream" => upstream = Some(value()),
            "--listen" => listen = value(),
            "--rtt-ms" => {
                let ms: f64 = value().parse().expect("--rtt-ms is a number");
                rtt = Some(Duration::from_secs_f64(ms / 1000.0));
            }
            "--window-kib" => window = value().parse::<usize>().expect("a number") * 1024,
            "--port-file" => port_file = Some(value()),
            other => panic!("unknown flag {other}"),
        }
    }
    Args {
        upstream: upstream.expect("--upstream HOST:PORT"),
        listen,
        rtt: rtt.expect("--rtt-ms"),
        window,
        port_file,
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read; at most `window`
/// bytes wait at once.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    window: usize,
) {
    let (queue, mut due) = mpsc::channel::<(Instant, Vec<u8>)>((window / CHUNK).max(1));
    let pump = async move {
        loop {
            let mut buffer = vec![0; CHUNK];
            let n = from.read(&mut buffer).await.unwrap_or(0);
            buffer.truncate(n);
            if queue.send((Instant::now() + delay, buffer)).await.is_err() || n == 0 {
                return;
            }
        }
    };
    let drain = async move {
        while let Some((at, data)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if data.is_empty() {
                let _ = to.shutdown().await;
                return;
            }
            if to.write_all(&data).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(pump, drain);
}

async fn handle(client: TcpStream, upstream: String, rtt: Duration, window: usize) {
    // The handshake of a new connection: one round trip before the client's bytes can leave.
    tokio::time::sleep(rtt).await;
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        forward(client_read, server_write, rtt / 2, window),
        forward(server_read, client_write, rtt / 2, window),
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = args();
    let listener = TcpListener::bind(&args.listen).await.expect("listen");
    let port = listener.local_addr().expect("local address").port();
    let host = args.listen.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
    println!("listening on {host}:{port}");
    if let Some(path) = &args.port_file {
        std::fs::write(path, port.to_string()).expect("port file");
    }
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(handle(client, args.upstream.clone(), args.rtt, args.window));
    }
}
