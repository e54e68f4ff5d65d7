//! TCP on green threads: an echo server on one worker serving many
//! clients at once, a silent client that holds no worker, half-close, a
//! reset mid-request, timeouts, refused connections, no descriptor leaks
//! over many connect/close cycles, and the same types on OS threads.

mod common;

use common::{join_all, scaled, workers};
use preemptive_mlthreading_rust::net::{TcpListener, TcpStream};
use preemptive_mlthreading_rust::{Duration, RoundRobinScheduler};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// An echo server on `sched`: a thread per connection, each echoing until
/// end of file; counts the connections it served.
fn echo_server(sched: &RoundRobinScheduler, listener: TcpListener, served: Arc<AtomicU64>) {
    let s = sched.clone();
    sched
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let served = Arc::clone(&served);
                s.spawn(move || {
                    let mut buf = [0u8; 1024];
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if conn.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
            }
        })
        .unwrap();
}

#[test]
fn one_worker_serves_many_clients_at_once() {
    let sched = workers(1);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    echo_server(&sched, listener, Arc::clone(&served));
    let clients = scaled(200);
    // Every client connects first, then all talk: the server has them all
    // open at once, on its one worker.
    let barrier = Arc::new(preemptive_mlthreading_rust::sync::Barrier::new(clients as usize));
    let hs: Vec<_> = (0..clients)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            sched
                .spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    barrier.wait();
                    let msg = format!("client {i}");
                    c.write_all(msg.as_bytes()).unwrap();
                    let mut back = vec![0u8; msg.len()];
                    c.read_exact(&mut back).unwrap();
                    assert_eq!(back, msg.as_bytes());
                    c.shutdown(Shutdown::Write).unwrap();
                    let mut rest = Vec::new();
                    c.read_to_end(&mut rest).unwrap();
                    assert!(rest.is_empty());
                })
                .unwrap()
        })
        .collect();
    join_all(hs);
    common::wait_until(
        std::time::Duration::from_secs(30),
        || served.load(Ordering::Relaxed) == clients,
        || format!("{} of {clients} connections served", served.load(Ordering::Relaxed)),
    );
    println!("{clients} clients echoed on one worker");
}

#[test]
fn a_silent_client_holds_no_worker() {
    let sched = workers(1);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    echo_server(&sched, listener, Arc::default());
    // Connected, says nothing: its server thread waits on the socket.
    let silent = std::net::TcpStream::connect(addr).unwrap();
    let h = sched
        .spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"still served").unwrap();
            let mut back = [0u8; 12];
            c.read_exact(&mut back).unwrap();
            back
        })
        .unwrap();
    assert_eq!(&h.join().unwrap(), b"still served");
    drop(silent);
}

#[test]
fn half_close_reset_timeout_and_refusal() {
    let sched = workers(1);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = sched
        .spawn(move || {
            // 1. Half-close: the request ends with the client's FIN; the
            // reply still goes back.
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            s.read_to_end(&mut req).unwrap();
            s.write_all(&req.iter().rev().copied().collect::<Vec<_>>()).unwrap();
            drop(s);
            // 2. A reset mid-request: an error or end of file, never a hang;
            // the listener goes on.
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 64];
            let outcome = loop {
                match s.read(&mut buf) {
                    Ok(0) => break "eof",
                    Ok(_) => continue,
                    Err(e) => break if e.kind() == ErrorKind::ConnectionReset { "reset" } else { "error" },
                }
            };
            // 3. A read timeout comes back as WouldBlock, as std's does.
            let (s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
            let timed_out = (&s).read(&mut buf).map_err(|e| e.kind());
            (outcome, timed_out)
        })
        .unwrap();
    let client = sched
        .spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(b"abc").unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            let c2 = socket2::Socket::from(TcpStream::connect(addr).unwrap().into_std().unwrap());
            c2.set_linger(Some(Duration::ZERO)).unwrap();
            (&c2).write_all(b"partial requ").unwrap();
            drop(c2); // RST
            let c3 = TcpStream::connect(addr).unwrap();
            (reply, c3)
        })
        .unwrap();
    let (reply, _c3) = client.join().unwrap();
    assert_eq!(reply, "cba");
    let (outcome, timed_out) = server.join().unwrap();
    assert!(outcome == "reset" || outcome == "eof", "{outcome}");
    assert_eq!(timed_out, Err(ErrorKind::WouldBlock));
    // Nobody listens on a port just freed: refused, not a hang.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let refused = sched.spawn(move || TcpStream::connect(free).map(|_| ()).map_err(|e| e.kind())).unwrap();
    assert_eq!(refused.join().unwrap(), Err(ErrorKind::ConnectionRefused));
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn child_no_descriptor_leaks() {
    if !common::is_child("child_no_descriptor_leaks") {
        return;
    }
    let sched = workers(2);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    echo_server(&sched, listener, Arc::clone(&served));
    // Warm up (the poller's own descriptors, the scheduler's).
    sched.spawn(move || drop(TcpStream::connect(addr).unwrap())).unwrap().join().unwrap();
    common::wait_until(std::time::Duration::from_secs(30), || served.load(Ordering::Relaxed) == 1, || "warm-up".into());
    let before = open_fds();
    // The 10^5 cycles, from four client threads at once.
    let n = scaled(100_000) / 4 * 4;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            sched
                .spawn(move || {
                    for i in 0..n / 4 {
                        let mut c = TcpStream::connect(addr).unwrap();
                        c.write_all(&[i as u8]).unwrap();
                        let mut b = [0u8; 1];
                        c.read_exact(&mut b).unwrap();
                        assert_eq!(b[0], i as u8);
                    }
                })
                .unwrap()
        })
        .collect();
    join_all(clients);
    common::wait_until(
        std::time::Duration::from_secs(30),
        || served.load(Ordering::Relaxed) == n + 1,
        || format!("{} served", served.load(Ordering::Relaxed)),
    );
    let after = open_fds();
    println!("CHILD: {n} connections, {before} descriptors open before, {after} after");
    assert!(after <= before + 2, "{before} descriptors before, {after} after {n} connections");
}

/// In a process of its own: the other tests' sockets would count too.
#[test]
fn no_descriptor_leaks_over_many_connections() {
    common::child_passes("child_no_descriptor_leaks", "CHILD:");
}

#[test]
fn the_same_types_work_on_os_threads() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        let mut b = [0u8; 2];
        s.read_exact(&mut b).unwrap();
        (b, peer)
    });
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    assert!(c.nodelay().unwrap());
    c.write_all(b"os").unwrap();
    let (b, peer) = t.join().unwrap();
    assert_eq!(&b, b"os");
    assert_eq!(peer, c.local_addr().unwrap());
    assert_eq!(c.peer_addr().unwrap(), addr);
}
