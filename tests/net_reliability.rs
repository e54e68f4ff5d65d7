//! The network layer at its limits: ten thousand connections at once, a
//! process out of descriptors (`EMFILE` on accept is an error and the
//! accept loop goes on). Each in a child process of its own: they change
//! the descriptor limit.

mod common;

use common::{join_all, scaled};

use preemptive_mlthreading_rust::WorkStealingScheduler;
use preemptive_mlthreading_rust::net::{TcpListener, TcpStream};
use preemptive_mlthreading_rust::sync::Barrier;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn nofile() -> (u64, u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    (r.rlim_cur, r.rlim_max)
}

fn set_nofile(soft: u64, hard: u64) -> std::io::Result<()> {
    let r = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: setrlimit reads the struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// Raises the soft descriptor limit to the hard one (root may raise the
/// hard one too, up to fs.nr_open), failing clearly when `need` is more.
fn raise_nofile(need: u64) {
    let (soft, hard) = nofile();
    if hard < need {
        let _ = set_nofile(need, need);
    }
    let (_, hard) = nofile();
    assert!(
        hard >= need,
        "this test needs {need} descriptors in one process; RLIMIT_NOFILE's hard limit is {hard} (soft {soft}) \
         and could not be raised: run as root or raise it (ulimit -Hn)"
    );
    set_nofile(hard, hard).unwrap();
}

/// The server: a thread per connection, on two workers; the clients are
/// another process (each side needs a descriptor per connection).
#[test]
fn child_ten_thousand_connections() {
    if !common::is_child("child_ten_thousand_connections") {
        return;
    }
    let n = scaled(10_000);
    raise_nofile(n + 64);
    let sched = WorkStealingScheduler::new().with_workers(2);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let open = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let (s, served2, open2, peak2) = (sched.clone(), Arc::clone(&served), Arc::clone(&open), Arc::clone(&peak));
    sched
        .spawn(move || {
            for conn in listener.incoming() {
                let mut conn = conn.expect("accept");
                let (served, open) = (Arc::clone(&served2), Arc::clone(&open2));
                let now = open.fetch_add(1, Ordering::Relaxed) + 1;
                peak2.fetch_max(now, Ordering::Relaxed);
                s.spawn(move || {
                    let mut b = [0u8; 8];
                    conn.read_exact(&mut b).unwrap();
                    conn.write_all(&b).unwrap();
                    // Until the client closes.
                    assert_eq!(conn.read(&mut b).unwrap(), 0);
                    open.fetch_sub(1, Ordering::Relaxed);
                    served.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
            }
        })
        .unwrap();
    let t = std::time::Instant::now();
    let out = common::run_child("child_ten_thousand_clients", &[("PMT_ADDR", &addr.to_string())]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("CLIENTS:"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    common::wait_until(
        std::time::Duration::from_secs(60),
        || served.load(Ordering::Relaxed) == n,
        || format!("{} of {n} served", served.load(Ordering::Relaxed)),
    );
    println!(
        "CHILD: {n} connections open at once (the server saw {} at its peak), each echoed, in {:?}",
        peak.load(Ordering::Relaxed),
        t.elapsed()
    );
    assert_eq!(peak.load(Ordering::Relaxed), n, "every connection was open at once");
}

/// The clients: every one connects, then waits until all have, so that
/// all connections are open at once before any byte moves.
#[test]
fn child_ten_thousand_clients() {
    if !common::is_child("child_ten_thousand_clients") {
        return;
    }
    let n = scaled(10_000);
    raise_nofile(n + 64);
    let addr: std::net::SocketAddr = std::env::var("PMT_ADDR").unwrap().parse().unwrap();
    let sched = WorkStealingScheduler::new().with_workers(2);
    let all = Arc::new(Barrier::new(n as usize));
    let clients: Vec<_> = (0..n)
        .map(|i| {
            let all = Arc::clone(&all);
            sched
                .spawn(move || {
                    let mut c = TcpStream::connect(addr).unwrap();
                    all.wait();
                    c.write_all(&i.to_le_bytes()).unwrap();
                    let mut b = [0u8; 8];
                    c.read_exact(&mut b).unwrap();
                    assert_eq!(u64::from_le_bytes(b), i);
                    // Closed only once every client has its answer.
                    all.wait();
                })
                .unwrap()
        })
        .collect();
    join_all(clients);
    println!("CLIENTS: {n} done");
}

#[test]
fn ten_thousand_connections_at_once() {
    common::child_passes("child_ten_thousand_connections", "CHILD:");
}

#[test]
fn child_emfile_on_accept() {
    if !common::is_child("child_emfile_on_accept") {
        return;
    }
    let sched = WorkStealingScheduler::new().with_workers(1);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Connections the kernel completes before they are accepted.
    let mut clients: Vec<_> = (0..4).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    // No descriptor left for an accepted connection: a low limit, and
    // fillers up to it (holes below it would be handed out first).
    let (_, hard) = nofile();
    set_nofile(open_fds() + 8, hard).unwrap();
    let mut fillers = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        fillers.push(f);
    }
    let fillers = Arc::new(std::sync::Mutex::new(fillers));
    let f2 = Arc::clone(&fillers);
    let out = sched
        .spawn(move || {
            let mut seen = Vec::new();
            // The accept loop goes on past the error.
            for conn in listener.incoming() {
                match conn {
                    Ok(c) => {
                        seen.push(Ok(()));
                        drop(c);
                        if seen.iter().filter(|r| r.is_ok()).count() == 2 {
                            break;
                        }
                    }
                    Err(e) => {
                        if seen.is_empty() {
                            // Descriptors freed, as closing connections
                            // would: the next accepts succeed.
                            f2.lock().unwrap().truncate(0);
                        }
                        seen.push(Err(e.raw_os_error()));
                    }
                }
            }
            seen
        })
        .unwrap()
        .join()
        .unwrap();
    clients.clear();
    println!("CHILD: accepts gave {out:?}");
    assert_eq!(out.first(), Some(&Err(Some(libc::EMFILE))), "{out:?}");
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 2, "{out:?}");
}

#[test]
fn emfile_on_accept_is_an_error_and_the_loop_goes_on() {
    common::child_passes("child_emfile_on_accept", "CHILD:");
}
