//! Loom models of the channel protocol. Run with
//! `RUSTFLAGS="--cfg loom" cargo test --release --lib channel::loom`.
//!
//! Under loom a timed wait may time out at any point (see `waiter`), so
//! the timed models explore every place a timeout can race a transfer.
//! Their timeouts are long: a deadline that really passed would skip that
//! scheduling point depending on the wall clock, and loom needs every
//! execution of a model to be deterministic.

use super::bounded;
use loom::thread;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Explores `f` with at most 2 preemptions (unless `LOOM_MAX_PREEMPTIONS`
/// says otherwise) and prints how many executions that took.
/// The timeout of the timed operations (it never really passes).
const PATIENCE: Duration = Duration::from_secs(3600);

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
        let t = thread::spawn(move || tx.send_timeout(7, PATIENCE).err().map(|e| e.into_inner()));
        // Disconnected: the sender gave up and dropped its handle first.
        let got = rx.recv_timeout(PATIENCE).ok();
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
        drop(rx.recv_timeout(PATIENCE));
        drop(rx);
        t.join().unwrap();
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    });
}

/// Two timed sends on two rendezvous channels race one timed select: each
/// value is selected or returned, and the select takes at most one.
#[test]
fn select_timeout_races_two_timed_sends() {
    model(|| {
        let (tx_a, rx_a) = bounded(0);
        let (tx_b, rx_b) = bounded(0);
        let senders: Vec<_> = [(tx_a, 1), (tx_b, 2)]
            .into_iter()
            .map(|(tx, v)| thread::spawn(move || tx.send_timeout(v, PATIENCE).err().map(|e| e.into_inner())))
            .collect();
        let got = match super::select_timeout(&[&rx_a, &rx_b], PATIENCE) {
            Ok((i, Ok(v))) => {
                assert_eq!(v, i + 1);
                vec![v]
            }
            // Disconnected: that sender timed out and dropped its handle.
            Ok((_, Err(_))) | Err(_) => vec![],
        };
        let returned: Vec<usize> = senders.into_iter().filter_map(|h| h.join().unwrap()).collect();
        let mut all: Vec<usize> = got.into_iter().chain(returned).collect();
        all.sort_unstable();
        assert_eq!(all, [1, 2]);
    });
}

/// A select waiting on two channels is woken by a send on the second while
/// the first sender's handle is dropped: it gets the value or sees the
/// disconnection, and the value is never lost.
#[test]
fn select_sees_a_send_or_a_disconnection() {
    model(|| {
        let (tx_a, rx_a) = bounded::<usize>(0);
        let (tx_b, rx_b) = bounded(1);
        let t1 = thread::spawn(move || drop(tx_a));
        let t2 = thread::spawn(move || tx_b.send(5).unwrap());
        match super::select(&[&rx_a, &rx_b]) {
            (0, Err(_)) => assert_eq!(rx_b.recv(), Ok(5)),
            (1, Ok(5)) => {}
            other => panic!("{other:?}"),
        }
        t1.join().unwrap();
        t2.join().unwrap();
    });
}

/// A select's send arm on a rendezvous channel meets a plain timed
/// receiver: the value is received, or (the receiver gave up) the select
/// is still waiting, and then a second receive takes it; never both, never
/// lost.
#[test]
fn a_select_send_arm_meets_a_plain_receiver() {
    model(|| {
        let (tx, rx) = bounded::<u8>(0);
        let (_keep, idle) = bounded::<u8>(0);
        let t = thread::spawn(move || {
            let mut sel = super::Select::new();
            let s = sel.send(&tx, 9);
            sel.recv(&idle);
            let op = sel.select();
            assert_eq!(op.index(), s);
            op.send(&tx)
        });
        let got = match rx.recv_timeout(PATIENCE) {
            Ok(v) => v,
            Err(_) => rx.recv().unwrap(),
        };
        assert_eq!(got, 9);
        assert_eq!(t.join().unwrap(), Ok(()));
    });
}

/// Two selects meet on a rendezvous channel, one sending and one
/// receiving, each beside an arm that never completes: the value passes
/// exactly once (the abort-and-retry round of `select_arms` included).
#[test]
fn two_selects_meet_on_a_rendezvous_channel() {
    model(|| {
        let (tx, rx) = bounded::<u8>(0);
        let (_keep_a, idle_a) = bounded::<u8>(0);
        let (_keep_b, idle_b) = bounded::<u8>(0);
        let t = thread::spawn(move || {
            let mut sel = super::Select::new();
            sel.recv(&idle_a);
            let s = sel.send(&tx, 4);
            let op = sel.select();
            assert_eq!(op.index(), s);
            op.send(&tx).unwrap();
        });
        let mut sel = super::Select::new();
        let r = sel.recv(&rx);
        sel.recv(&idle_b);
        let op = sel.select();
        assert_eq!(op.index(), r);
        assert_eq!(op.recv(&rx), Ok(4));
        t.join().unwrap();
    });
}

/// A select that starts while the channel is empty and a sender then
/// buffers two values: the select gets the first, a receive the second
/// (a select's entry must never be linked beside buffered values, or the
/// second send would be handed to it past the first, or the sender's drop
/// would report the channel closed with values still in it).
#[test]
fn a_select_never_overtakes_buffered_values() {
    for keep_sender in [false, true] {
        // Three preemptions: the window is between the select's first pass,
        // the sender's two sends and the select's link.
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(move || {
            let (tx, rx) = bounded::<u8>(2);
            let t = thread::spawn(move || {
                tx.send(1).unwrap();
                tx.send(2).unwrap();
                keep_sender.then_some(tx)
            });
            let (_, first) = super::select(&[&rx]);
            let second = rx.recv();
            let _tx = t.join().unwrap();
            assert_eq!((first, second), (Ok(1), Ok(2)), "values overtook each other");
        });
    }
}
