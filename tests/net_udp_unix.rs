//! UDP and Unix-domain sockets on green threads: receivers waiting on one
//! worker leave it to the senders, a receive timeout, connected UDP, and
//! a Unix-domain echo with half-close.

mod common;

use common::{join_all, scaled, workers};
use preemptive_mlthreading_rust::Duration;
use preemptive_mlthreading_rust::net::{UdpSocket, UnixListener, UnixStream};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;

#[test]
fn udp_receivers_on_one_worker_get_every_datagram() {
    let sched = workers(1);
    let n = scaled(50) as usize;
    let receivers: Vec<_> = (0..n).map(|_| UdpSocket::bind("127.0.0.1:0").unwrap()).collect();
    let addrs: Vec<_> = receivers.iter().map(|r| r.local_addr().unwrap()).collect();
    let hs: Vec<_> = receivers
        .into_iter()
        .map(|r| {
            sched
                .spawn(move || {
                    let mut buf = [0u8; 8];
                    let (k, _) = r.recv_from(&mut buf).unwrap();
                    u64::from_le_bytes(buf[..k].try_into().unwrap())
                })
                .unwrap()
        })
        .collect();
    // The sender runs on the same worker, after every receiver waits.
    let sender = sched
        .spawn(move || {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            for (i, a) in addrs.iter().enumerate() {
                s.send_to(&(i as u64).to_le_bytes(), a).unwrap();
            }
        })
        .unwrap();
    sender.join().unwrap();
    let got = join_all(hs);
    assert!(got.iter().enumerate().all(|(i, &v)| v == i as u64), "{got:?}");
}

#[test]
fn udp_timeout_and_connected_sockets() {
    let sched = workers(1);
    let h = sched
        .spawn(|| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut buf = [0u8; 4];
            let timed_out = s.recv_from(&mut buf).map_err(|e| e.kind());
            let a = UdpSocket::bind("127.0.0.1:0").unwrap();
            let b = UdpSocket::bind("127.0.0.1:0").unwrap();
            a.connect(b.local_addr().unwrap()).unwrap();
            b.connect(a.local_addr().unwrap()).unwrap();
            a.send(b"ping").unwrap();
            let n = b.recv(&mut buf).unwrap();
            (timed_out, buf[..n].to_vec())
        })
        .unwrap();
    let (timed_out, got) = h.join().unwrap();
    assert_eq!(timed_out, Err(ErrorKind::WouldBlock));
    assert_eq!(got, b"ping");
}

#[test]
fn unix_echo_with_half_close_on_one_worker() {
    let sched = workers(1);
    let path = std::env::temp_dir().join(format!("pmt-test-{}-echo.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let clients = scaled(20);
    let server = sched
        .spawn(move || {
            for _ in 0..clients {
                let (mut s, _) = listener.accept().unwrap();
                let mut req = Vec::new();
                s.read_to_end(&mut req).unwrap();
                s.write_all(&req).unwrap();
            }
        })
        .unwrap();
    let hs: Vec<_> = (0..clients)
        .map(|i| {
            let path = path.clone();
            sched
                .spawn(move || {
                    let mut c = UnixStream::connect(&path).unwrap();
                    let msg = format!("unix client {i}");
                    c.write_all(msg.as_bytes()).unwrap();
                    c.shutdown(Shutdown::Write).unwrap();
                    let mut back = String::new();
                    c.read_to_string(&mut back).unwrap();
                    assert_eq!(back, msg);
                })
                .unwrap()
        })
        .collect();
    join_all(hs);
    server.join().unwrap();
    std::fs::remove_file(&path).unwrap();
    // A pair, with a read timeout.
    let (a, b) = UnixStream::pair().unwrap();
    b.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let h = sched.spawn(move || (&b).read(&mut [0u8; 1]).map_err(|e| e.kind())).unwrap();
    assert_eq!(h.join().unwrap(), Err(ErrorKind::WouldBlock));
    drop(a);
}
