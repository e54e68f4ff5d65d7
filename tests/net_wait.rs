//! Waiting for descriptors (`net::wait_readable`, `wait_writable`): a
//! green thread waiting on a pipe leaves its worker to others (one worker:
//! the writer runs on it meanwhile), timeouts come back as `TimedOut`, a
//! reader and a writer may wait on one socket at once, a second reader is
//! an error, many waiters are all woken, and plain OS threads block in
//! `poll(2)`.

mod common;

use common::{join_all, scaled, workers};
use preemptive_mlthreading_rust::net::{wait_readable, wait_writable};
use preemptive_mlthreading_rust::{Duration, ThreadBuilder, yield_now};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Reads until `n` bytes came, waiting whenever the socket has none.
fn read_exactly(s: &mut UnixStream, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match s.read(&mut out[got..]) {
            Ok(0) => panic!("end of file after {got} bytes"),
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::WouldBlock => wait_readable(&*s, None).unwrap(),
            Err(e) => panic!("{e}"),
        }
    }
    out
}

#[test]
fn a_waiting_reader_leaves_its_worker_to_the_writer() {
    // One worker: the writer can only run if the reader's wait parks it.
    let sched = workers(1);
    let (a, mut b) = UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    let waited = Arc::new(AtomicBool::new(false));
    let w = Arc::clone(&waited);
    let reader = sched
        .spawn(move || {
            w.store(true, Ordering::Release);
            read_exactly(&mut b, 5)
        })
        .unwrap();
    let writer = sched
        .spawn(move || {
            let mut a = a;
            // Once the reader has started (and found nothing to read).
            while !waited.load(Ordering::Acquire) {
                yield_now();
            }
            a.write_all(b"hello").unwrap();
            a
        })
        .unwrap();
    let _a = writer.join().unwrap();
    assert_eq!(reader.join().unwrap(), b"hello");
}

#[test]
fn a_wait_times_out_with_timed_out() {
    let sched = workers(1);
    let (_a, b) = UnixStream::pair().unwrap();
    let h = sched.spawn(move || wait_readable(&b, Some(Duration::from_millis(20))).map_err(|e| e.kind())).unwrap();
    assert_eq!(h.join().unwrap(), Err(ErrorKind::TimedOut));
    // And on an OS thread.
    let (_c, d) = UnixStream::pair().unwrap();
    assert_eq!(wait_readable(&d, Some(Duration::from_millis(5))).map_err(|e| e.kind()), Err(ErrorKind::TimedOut));
    d.set_nonblocking(true).unwrap();
    assert!(wait_writable(&d, Some(Duration::from_millis(5))).is_ok(), "an empty socket has room");
}

#[test]
fn readers_and_a_writer_wait_on_one_socket_and_all_are_woken() {
    let sched = workers(2);
    let (a, b) = UnixStream::pair().unwrap();
    b.set_nonblocking(true).unwrap();
    let b = Arc::new(b);
    // Fill b's send buffer, so that a writer on b must wait too.
    let mut filled = 0usize;
    loop {
        match (&*b).write(&[0u8; 4096]) {
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    // Two readers on one descriptor (the second waits through a duplicate
    // of it), and a writer.
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let rb = Arc::clone(&b);
            sched.spawn(move || wait_readable(&*rb, Some(Duration::from_secs(30))).map_err(|e| e.kind())).unwrap()
        })
        .collect();
    let wb = Arc::clone(&b);
    let writer = sched.spawn(move || wait_writable(&*wb, Some(Duration::from_secs(30))).map_err(|e| e.kind())).unwrap();
    let settle = if std::env::var_os("PMT_TEST_RUNNER").is_some() { 1000 } else { 50 };
    std::thread::sleep(std::time::Duration::from_millis(settle));
    // Wake all: data for the readers, room for the writer.
    let mut a = a;
    a.write_all(b"x").unwrap();
    a.set_nonblocking(true).unwrap();
    let mut sink = vec![0u8; 1 << 16];
    let mut drained = 0;
    while drained < filled {
        match a.read(&mut sink) {
            Ok(n) => drained += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
    }
    for r in readers {
        assert_eq!(r.join().unwrap(), Ok(()));
    }
    assert_eq!(writer.join().unwrap(), Ok(()));
}

#[test]
fn a_descriptor_closed_under_a_waiter_ends_its_wait_with_an_error() {
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
    let sched = workers(1);
    let (_a, b) = UnixStream::pair().unwrap();
    let raw = b.into_raw_fd();
    let h = sched
        .spawn(move || {
            // SAFETY: `raw` stays open until the main thread closes
            // it, which is what this test is about.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
            wait_readable(fd, Some(Duration::from_secs(60)))
        })
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    // SAFETY: the descriptor is ours; the waiter must cope.
    drop(unsafe { OwnedFd::from_raw_fd(raw) });
    // The number is reused at once by a new socket: the waiter must not
    // mistake it for the old one.
    let (c, _d) = UnixStream::pair().unwrap();
    println!("closed {raw}; reused as {}", c.as_raw_fd());
    let t = std::time::Instant::now();
    let e = h.join().unwrap().expect_err("a closed descriptor is an error, not a hang or a success");
    println!("the waiter saw: {e} after {:?}", t.elapsed());
    assert_ne!(e.kind(), ErrorKind::TimedOut);
    assert!(e.to_string().contains("closed"), "{e}");
}

#[test]
fn many_waiters_are_all_woken() {
    let sched = workers(2);
    let n = scaled(500) as usize;
    let pairs: Vec<_> = (0..n).map(|_| UnixStream::pair().unwrap()).collect();
    let woken = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    let hs: Vec<_> = pairs
        .into_iter()
        .map(|(a, mut b)| {
            writers.push(a);
            b.set_nonblocking(true).unwrap();
            let woken = Arc::clone(&woken);
            ThreadBuilder::new()
                .scheduler(sched.clone())
                .spawn(move || {
                    let got = read_exactly(&mut b, 1);
                    woken.fetch_add(1, Ordering::Relaxed);
                    got[0]
                })
                .unwrap()
        })
        .collect();
    for (i, a) in writers.iter_mut().enumerate() {
        a.write_all(&[i as u8]).unwrap();
    }
    let got = join_all(hs);
    assert_eq!(woken.load(Ordering::Relaxed), n as u64);
    assert!(got.iter().enumerate().all(|(i, &v)| v == i as u8), "each reader got its own byte");
    println!("{n} waiters woken");
}
