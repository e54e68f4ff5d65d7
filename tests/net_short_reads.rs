//! A TCP read that returns less than it asked for has emptied the receive
//! queue, so the next read waits for the poller instead of asking the
//! kernel first (`src/net/reactor/slot.rs`). These check the cases where
//! that reasoning could lose data or hang: urgent data that stops a read
//! short, a FIN right behind the data, timeouts and non-blocking mode
//! after a short read, and exact echoes of random-sized messages.

mod common;

use common::{join_all, scaled, workers};
use preemptive_mlthreading_rust::net::{TcpListener, TcpStream};
use preemptive_mlthreading_rust::{Duration, JoinHandle, RoundRobinScheduler};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};

/// A read that must not hang: a hang fails the test as a timeout.
const PATIENCE: Duration = Duration::from_secs(20);

/// A one-worker server that runs `serve` on its first connection.
fn serve_one<T: Send + 'static>(serve: impl FnOnce(TcpStream) -> T + Send + 'static) -> (JoinHandle<T>, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = workers(1).spawn(move || serve(listener.accept().unwrap().0)).unwrap();
    (server, addr)
}

#[test]
fn urgent_data_that_stops_a_read_short_does_not_hide_what_follows() {
    let (server, addr) = serve_one(|mut s| {
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut buf = [0u8; 64];
        // Parks first: the socket is registered with the poller.
        assert_eq!(s.read(&mut buf).unwrap(), 1);
        // Meanwhile everything arrives, and the idle worker polls its
        // events.
        preemptive_mlthreading_rust::sleep(Duration::from_millis(200));
        let mut got = Vec::new();
        while got.len() < 4 {
            match s.read(&mut buf) {
                Ok(0) => panic!("end of file after {got:?}"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("after {got:?}: {e} (a read parked with data queued)"),
            }
        }
        s.write_all(b"ok").unwrap();
        got
    });
    let client = socket2::Socket::from(std::net::TcpStream::connect(addr).unwrap());
    // Late enough that the server's first read parks.
    std::thread::sleep(Duration::from_millis(100));
    (&client).write_all(b"x").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    (&client).write_all(b"ab").unwrap();
    // The server's read stops short at the urgent mark ("ab"), with "cd"
    // still queued and no event to come for it.
    client.send_out_of_band(b"!").unwrap();
    (&client).write_all(b"cd").unwrap();
    let mut ok = [0u8; 2];
    (&client).read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"ok");
    assert_eq!(server.join().unwrap(), b"abcd", "the urgent byte is skipped, the rest all read");
}

#[test]
fn a_fin_right_behind_the_data_is_always_seen() {
    let sched = workers(1);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let rounds = scaled(300);
    let server = sched
        .spawn(move || {
            for round in 0..rounds {
                let (mut s, _) = listener.accept().unwrap();
                s.set_read_timeout(Some(PATIENCE)).unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 64];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                        Err(e) => panic!("round {round}, after {got:?}: {e}"),
                    }
                }
                assert_eq!(got, b"abc", "round {round}");
            }
        })
        .unwrap();
    for round in 0..rounds {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        // Vary where the FIN lands against the server's reads: in the
        // last case the server has parked (registered with the poller)
        // before "bc" and the FIN come, in one event.
        if round % 4 == 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        c.write_all(b"a").unwrap();
        match round % 4 {
            1 => std::thread::yield_now(),
            2 => std::thread::sleep(Duration::from_micros(200)),
            3 => std::thread::sleep(Duration::from_millis(1)),
            _ => {}
        }
        c.write_all(b"bc").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
    }
    server.join().unwrap();
    println!("{rounds} connections: data then FIN, each read to its end");
}

#[test]
fn after_a_short_read_a_timeout_and_non_blocking_mode_still_answer() {
    let (server, addr) = serve_one(|mut s| {
        let mut buf = [0u8; 64];
        assert_eq!(s.read(&mut buf).unwrap(), 5, "short: the queue is empty now");
        s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let timed_out = s.read(&mut buf).map_err(|e| e.kind());
        s.set_nonblocking(true).unwrap();
        let nonblocking = s.read(&mut buf).map_err(|e| e.kind());
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        s.write_all(b"go").unwrap();
        let n = s.read(&mut buf).unwrap();
        (timed_out, nonblocking, buf[..n].to_vec())
    });
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(b"first").unwrap();
    let mut go = [0u8; 2];
    c.read_exact(&mut go).unwrap();
    c.write_all(b"second").unwrap();
    let (timed_out, nonblocking, second) = server.join().unwrap();
    assert_eq!(timed_out, Err(ErrorKind::WouldBlock));
    assert_eq!(nonblocking, Err(ErrorKind::WouldBlock));
    assert_eq!(second, b"second");
}

/// A small deterministic generator (xorshift), so a failure replays.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Echoes each connection with an 8 KiB buffer, so that reads come back
/// short and full by turns.
fn echo(sched: &RoundRobinScheduler, listener: TcpListener) {
    let s = sched.clone();
    sched
        .spawn(move || {
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                s.spawn(move || {
                    let mut buf = vec![0u8; 8192];
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => conn.write_all(&buf[..n]).unwrap(),
                        }
                    }
                })
                .unwrap();
            }
        })
        .unwrap();
}

#[test]
fn random_sized_messages_echo_exactly_under_preemption() {
    let sched = common::preemptive(2, Duration::from_millis(1));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    echo(&sched, listener);
    let (clients, messages) = (scaled(16), scaled(200));
    let hs: Vec<_> = (0..clients)
        .map(|i| {
            sched
                .spawn(move || {
                    let c = TcpStream::connect(addr).unwrap();
                    c.set_read_timeout(Some(PATIENCE)).unwrap();
                    let reader = c.try_clone().unwrap();
                    // The writer sends while the reader checks, so that the
                    // server's reads see data arrive in pieces.
                    let mut seed = 0x9e37_79b9_7f4a_7c15 ^ (i + 1);
                    let expected: Vec<u8> = (0..messages)
                        .flat_map(|m| {
                            let len = 1 + next(&mut seed) % 20_000;
                            (0..len).map(move |k| (m * 31 + k) as u8)
                        })
                        .collect();
                    let total = expected.len();
                    let sent = expected.clone();
                    let writer = preemptive_mlthreading_rust::spawn(move || {
                        let mut seed = 7 + i;
                        let mut at = 0;
                        while at < sent.len() {
                            let len = (1 + next(&mut seed) as usize % 9000).min(sent.len() - at);
                            (&c).write_all(&sent[at..at + len]).unwrap();
                            at += len;
                            if next(&mut seed).is_multiple_of(4) {
                                preemptive_mlthreading_rust::yield_now();
                            }
                        }
                        c
                    })
                    .unwrap();
                    let mut back = vec![0u8; total];
                    (&reader).read_exact(&mut back).unwrap();
                    let c = writer.join().unwrap();
                    c.shutdown(Shutdown::Write).unwrap();
                    let mut rest = Vec::new();
                    (&reader).read_to_end(&mut rest).unwrap();
                    assert!(rest.is_empty(), "client {i}: {} bytes beyond the echo", rest.len());
                    assert!(back == expected, "client {i}: the echo differs");
                    total
                })
                .unwrap()
        })
        .collect();
    let bytes: usize = join_all(hs).into_iter().sum();
    println!("{clients} clients echoed {bytes} bytes exactly, in {messages} random-sized messages each");
}
