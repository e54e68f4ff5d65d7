//! A TCP echo server, a green thread per connection, on one worker: the
//! threads park on their sockets (`net::TcpStream`) and the worker runs
//! whoever has data.
//!
//! `cargo run --release --example echo_server -- 7007` serves on
//! 127.0.0.1:7007 until killed; without a port it picks one, runs 1000
//! clients of its own against itself, prints how long they took, and
//! exits.

use preemptive_mlthreading_rust::RoundRobinScheduler;
use preemptive_mlthreading_rust::net::{TcpListener, TcpStream};
use std::io::{Read, Write};
use std::time::Instant;

fn serve(sched: &RoundRobinScheduler, listener: TcpListener) {
    let s = sched.clone();
    sched
        .spawn(move || {
            for conn in listener.incoming() {
                let mut conn = match conn {
                    Ok(c) => c,
                    // Out of descriptors, a reset before accept: this one is
                    // lost, the server goes on.
                    Err(e) => {
                        eprintln!("accept: {e}");
                        continue;
                    }
                };
                s.spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                })
                .unwrap();
            }
        })
        .unwrap();
}

fn main() {
    let port: Option<u16> = std::env::args().nth(1).map(|p| p.parse().expect("a port number"));
    let sched = RoundRobinScheduler::new().with_workers(1);
    let listener = TcpListener::bind(("127.0.0.1", port.unwrap_or(0))).expect("bind");
    let addr = listener.local_addr().unwrap();
    serve(&sched, listener);
    if port.is_some() {
        println!("echoing on {addr} (one worker); Ctrl-C to stop");
        loop {
            std::thread::park();
        }
    }
    let t = Instant::now();
    let clients: Vec<_> = (0..1000)
        .map(|i| {
            sched
                .spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    for round in 0..10 {
                        let msg = format!("client {i} round {round}");
                        c.write_all(msg.as_bytes()).unwrap();
                        let mut back = vec![0u8; msg.len()];
                        c.read_exact(&mut back).unwrap();
                        assert_eq!(back, msg.as_bytes());
                    }
                })
                .unwrap()
        })
        .collect();
    clients.into_iter().for_each(|h| h.join().unwrap());
    println!("1000 clients x 10 round trips on one worker (server and clients): {:?}", t.elapsed());
}
