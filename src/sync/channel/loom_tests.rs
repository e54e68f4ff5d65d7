//! Loom models of the channel protocol. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib channel::loom`.
//!
//! Under loom a timed wait may time out at any point (see `waiter`), so
//! the timed models explore every place a timeout can race a transfer.

use super::bounded;
use loom::thread;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Explores `f` with at most 2 preemptions (unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise) and prints how many executions that took.
fn model(f: impl Fn() + Send + Sync + 'static) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let mut b = loom::model::Builder::new();
    b.preemption_bound = b.preemption_bound.or(Some(2));
    b.check(move || {
        r.fetch_add(1, Ordering::Relaxed);
        f()
    });
    println!("{} executions", runs.load(Ordering::Relaxed));
}

#[test]
fn two_values_through_bounded_1_arrive_in_order() {
    model(|| {
        let (tx, rx) = bounded(1);
        let t = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
        });
        assert_eq!(rx.recv(), Ok(1));
        assert_eq!(rx.recv(), Ok(2));
        assert!(rx.recv().is_err());
        t.join().unwrap();
    });
}

#[test]
fn rendezvous_timeouts_race_the_transfer() {
    model(|| {
        let (tx, rx) = bounded(0);
        let t = thread::spawn(move || tx.send_timeout(7, Duration::from_millis(1)).err().map(|e| e.into_inner()));
        // Disconnected: the sender gave up and dropped its handle first.
        let got = rx.recv_timeout(Duration::from_millis(1)).ok();
        let returned = t.join().unwrap();
        // Exactly one of them has the value.
        assert_eq!(got.or(returned), Some(7));
        assert!(got.is_none() || returned.is_none(), "{got:?} {returned:?}");
    });
}

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn dropping_the_receiver_returns_or_drops_each_value_once() {
    model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = bounded(1);
        tx.send(Counted(Arc::clone(&drops))).unwrap();
        let d = Arc::clone(&drops);
        let t = thread::spawn(move || {
            // Blocks (full) until the receive makes room or the receiver goes.
            drop(tx.send(Counted(d)));
        });
        drop(rx.recv_timeout(Duration::from_millis(1)));
        drop(rx);
        t.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}
