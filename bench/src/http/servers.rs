//! The same minimal HTTP/1.1 keep-alive "hello" server in each peer, run
//! as a child process (`bench serve-http PEER WORKERS HOGS`): it binds a
//! free port on 127.0.0.1, prints it, and serves until killed. With
//! `HOGS` > 0 it also runs that many CPU-bound spinning threads of the
//! peer's own kind (green threads, tasks, coroutines, OS threads).

use std::hint::black_box;
use std::io::{Read, Write};

// The example is the server: one source for `cargo run --example
// http_hello` and for these figures.
#[allow(dead_code)]
#[path = "../../../examples/http_hello.rs"]
mod http_hello;

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";

fn spin() {
    let mut x = 0u64;
    loop {
        x = black_box(x.wrapping_add(1));
    }
}

fn announce(port: u16) {
    println!("PORT {port}");
    std::io::stdout().flush().expect("stdout");
}

pub fn serve(peer: &str, workers: usize, hogs: usize, slice_ms: Option<u64>) -> Result<(), String> {
    match peer {
        "ours" => ours(workers, hogs, slice_ms),
        "tokio" => tokio_hyper(workers, hogs),
        "may" => may_minihttp(workers, hogs),
        "os" => std_threads(hogs),
        other => Err(format!("no HTTP server for peer {other:?}")),
    }
}

fn ours(workers: usize, hogs: usize, slice_ms: Option<u64>) -> Result<(), String> {
    use preemptive_mlthreading_rust::WorkStealingScheduler;
    let mut sched = WorkStealingScheduler::new().with_workers(workers);
    if let Some(ms) = slice_ms {
        sched = sched.with_time_slice(std::time::Duration::from_millis(ms));
    }
    let listener = preemptive_mlthreading_rust::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let stats = std::env::var_os("PMT_HTTP_STATS").is_some();
    static LONGEST_RUN_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    for _ in 0..hogs {
        if stats {
            // Diagnosis: the hog times its own stretches on the CPU.
            sched
                .spawn(|| {
                    let (mut start, mut last) = (std::time::Instant::now(), std::time::Instant::now());
                    loop {
                        let now = std::time::Instant::now();
                        if now - last > std::time::Duration::from_micros(50) {
                            let ran = (last - start).as_nanos() as u64;
                            LONGEST_RUN_NS.fetch_max(ran, std::sync::atomic::Ordering::Relaxed);
                            start = now;
                        }
                        last = now;
                    }
                })
                .map_err(|e| e.to_string())?;
        } else {
            sched.spawn(spin).map_err(|e| e.to_string())?;
        }
    }
    http_hello::serve(&sched, listener);
    announce(port);
    if std::env::var_os("PMT_HTTP_STATS").is_some() {
        // Per second, to stderr: what the scheduler did (for diagnosis).
        let s = sched.clone();
        std::thread::spawn(move || {
            let mut last = (0, 0, 0, 0);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let now = (
                    s.total_preemptions(),
                    s.worker_hand_offs().iter().sum::<u64>(),
                    s.worker_switches().iter().sum::<u64>(),
                    s.worker_deferred_preemptions().iter().sum::<u64>(),
                );
                eprintln!(
                    "preemptions/s {} deferred/s {} hand-offs/s {} switches/s {} longest hog run {:?}",
                    now.0 - last.0,
                    now.3 - last.3,
                    now.1 - last.1,
                    now.2 - last.2,
                    std::time::Duration::from_nanos(LONGEST_RUN_NS.swap(0, std::sync::atomic::Ordering::Relaxed))
                );
                last = now;
            }
        });
    }
    loop {
        std::thread::park();
    }
}

fn tokio_hyper(workers: usize, hogs: usize) -> Result<(), String> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        for _ in 0..hogs {
            tokio::spawn(async { spin() });
        }
        announce(port);
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("Content-Type", "text/plain")
                            .body(Full::new(Bytes::from_static(b"Hello, world!")))
                            .expect("response"),
                    )
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    })
}

fn may_minihttp(workers: usize, hogs: usize) -> Result<(), String> {
    use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};
    #[derive(Clone)]
    struct Hello;
    impl HttpService for Hello {
        fn call(&mut self, _req: Request, rsp: &mut Response) -> std::io::Result<()> {
            rsp.header("Content-Type: text/plain").body("Hello, world!");
            Ok(())
        }
    }
    struct Factory;
    impl HttpServiceFactory for Factory {
        type Service = Hello;
        fn new_service(&self, _id: usize) -> Hello {
            Hello
        }
    }
    may::config().set_workers(workers);
    // may_minihttp takes an address, not a listener: find a free port and
    // hand it over (nothing else binds on loopback here meanwhile).
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    for _ in 0..hogs {
        // SAFETY: `go!` is unsafe in may because a coroutine must not block
        // its worker or use thread-locals; this one does neither (it is
        // meant to hog).
        let _ = unsafe { may::coroutine::spawn(spin) };
    }
    let server = Factory.start(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    announce(port);
    server.join().map_err(|_| "may_minihttp server panicked".to_string())
}

fn std_threads(hogs: usize) -> Result<(), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    for _ in 0..hogs {
        std::thread::spawn(spin);
    }
    announce(port);
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let spawned = std::thread::Builder::new().stack_size(64 << 10).spawn(move || {
            let _ = conn.set_nodelay(true);
            let mut buf = [0u8; 8192];
            let mut filled = 0;
            loop {
                // Requests without bodies: count the ends of their heads.
                let mut answered = 0;
                while let Some(end) = buf[answered..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                    answered += end + 4;
                    if conn.write_all(RESPONSE).is_err() {
                        return;
                    }
                }
                buf.copy_within(answered..filled, 0);
                filled -= answered;
                match conn.read(&mut buf[filled..]) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => filled += n,
                }
            }
        });
        if spawned.is_err() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    Ok(())
}
