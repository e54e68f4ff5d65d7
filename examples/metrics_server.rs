//! Serves `SystemMetrics` in the Prometheus text format on 127.0.0.1, with
//! a few green threads doing work to measure:
//!
//! ```sh
//! cargo run --release --example metrics_server -- 9464 &
//! curl -s 127.0.0.1:9464/metrics | head
//! ```
//!
//! It serves for 30 s (or the seconds given as a second argument), then
//! exits.

use preemptive_mlthreading_rust::{SystemMetrics, sleep, spawn, yield_now};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(9464);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    // Something to count: threads that yield and sleep in turn.
    for _ in 0..4 {
        spawn(|| {
            loop {
                (0..1000).for_each(|_| yield_now());
                sleep(Duration::from_millis(10));
            }
        })
        .map_err(std::io::Error::other)?;
    }
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    println!("serving http://127.0.0.1:{port}/metrics for {secs} s");
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let (stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(e) => return Err(e),
        };
        stream.set_nonblocking(false)?;
        let mut request = String::new();
        BufReader::new(&stream).read_line(&mut request)?;
        let body = SystemMetrics::current().to_prometheus();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
    }
    Ok(())
}
