//! An HTTP/1.1 keep-alive "hello" server: a green thread per connection,
//! plain blocking code, requests parsed with `httparse` (pipelined ones
//! too), the worker running whoever has a request.
//!
//! `cargo run --release --example http_hello -- 8080 [WORKERS]` serves
//! `Hello, world!` on 127.0.0.1:8080 until killed (try `wrk`); without a
//! port it serves on a free one, sends itself a few requests, prints the
//! answers and exits. `bench http` runs this same server against Go,
//! tokio + hyper, may_minihttp and std (bench/README.md).

use preemptive_mlthreading_rust::WorkStealingScheduler;
use preemptive_mlthreading_rust::net::{TcpListener, TcpStream};
use std::io::{self, Read, Write};

/// The body every request gets.
pub const BODY: &str = "Hello, world!";

/// Serves `listener` on `sched`, a green thread per connection, until the
/// process ends. An accept error (out of descriptors) loses that
/// connection only.
pub fn serve(sched: &WorkStealingScheduler, listener: TcpListener) {
    let s = sched.clone();
    sched
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(c) => {
                        if let Err(e) = s.spawn(move || drop(handle(c))) {
                            eprintln!("http_hello: cannot start a connection's thread: {e}");
                        }
                    }
                    Err(e) => {
                        eprintln!("http_hello: accept: {e}");
                        // Out of descriptors: give closing connections a
                        // moment rather than spin on the error.
                        if e.raw_os_error() == Some(EMFILE) {
                            std::thread::sleep(std::time::Duration::from_millis(10));
                        }
                    }
                }
            }
        })
        .expect("spawn the accept loop");
}

/// `EMFILE`: the process is out of file descriptors.
const EMFILE: i32 = 24;

/// One connection: answers each complete request in the buffer, writes
/// the answers in one go, reads more.
fn handle(mut conn: TcpStream) -> io::Result<()> {
    conn.set_nodelay(true)?;
    let mut buf = vec![0u8; 8192];
    let (mut filled, mut out) = (0, Vec::with_capacity(4096));
    loop {
        let mut start = 0;
        let mut close = false;
        while !close {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf[start..filled]) {
                Ok(httparse::Status::Complete(n)) => {
                    let body_len = header(&req, "content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
                    if filled - start < n + body_len {
                        break; // the body is still on its way
                    }
                    close = req.version == Some(0)
                        || header(&req, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
                    start += n + body_len;
                    write!(
                        out,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{BODY}",
                        BODY.len(),
                        if close { "Connection: close\r\n" } else { "" }
                    )?;
                }
                Ok(httparse::Status::Partial) => break,
                Err(_) => {
                    conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
                    return Ok(());
                }
            }
        }
        if !out.is_empty() {
            conn.write_all(&out)?;
            out.clear();
        }
        if close {
            return Ok(());
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() {
            conn.write_all(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(());
        }
        match conn.read(&mut buf[filled..])? {
            0 => return Ok(()),
            n => filled += n,
        }
    }
}

fn header<'a>(req: &httparse::Request<'_, 'a>, name: &str) -> Option<&'a str> {
    req.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).and_then(|h| std::str::from_utf8(h.value).ok())
}

#[allow(dead_code)]
fn main() {
    let mut args = std::env::args().skip(1);
    let port: Option<u16> = args.next().map(|p| p.parse().expect("a port number"));
    let workers: usize = args.next().map_or(1, |w| w.parse().expect("a number of workers"));
    let sched = WorkStealingScheduler::new().with_workers(workers);
    let listener = TcpListener::bind(("127.0.0.1", port.unwrap_or(0))).expect("bind");
    let addr = listener.local_addr().unwrap();
    serve(&sched, listener);
    if port.is_some() {
        println!("serving http://{addr}/ on {workers} worker(s); Ctrl-C to stop");
        loop {
            std::thread::park();
        }
    }
    // Two keep-alive requests, pipelined, then one that closes.
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /again HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    c.write_all(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert_eq!(answer.matches(BODY).count(), 3, "{answer}");
    print!("{answer}");
    println!("\n(3 answers on one connection, the last one closing it)");
}
