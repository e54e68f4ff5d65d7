//! Channels and oneshots under green threads, preemption and OS threads.

mod common;

use common::scaled;
use preemptive_mlthreading_rust::sync::channel::{
    self, Receiver, RecvTimeoutError, SendTimeoutError, Sender, TryRecvError, TrySendError,
};
use preemptive_mlthreading_rust::sync::oneshot;
use preemptive_mlthreading_rust::{Duration, RoundRobinScheduler, sleep, spawn};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// Runs `body` on a green thread of `green`, or on an OS thread when
/// `None`; returns its join.
fn start<R: Send + 'static>(
    body: impl FnOnce() -> R + Send + 'static,
    green: Option<&RoundRobinScheduler>,
) -> Box<dyn FnOnce() -> R> {
    match green {
        Some(sched) => {
            let h = sched.spawn(body).unwrap();
            Box::new(move || h.join().unwrap())
        }
        None => {
            let h = std::thread::spawn(body);
            Box::new(move || h.join().unwrap())
        }
    }
}

/// A little computation between channel operations, so that threads also
/// run out their time slices and get preempted.
fn work(n: u64) {
    for i in 0..n {
        std::hint::black_box(i);
    }
}

/// Counts its drops, to find values lost or dropped twice.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// 4 producers and 4 consumers, all green, preempted every 100 µs: each
/// consumer records what it got; every message arrives exactly once, and
/// each consumer sees every producer's messages in sending order.
fn four_by_four(tx: Sender<(usize, u64)>, rx: Receiver<(usize, u64)>, what: &str) {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let per = scaled(20_000);
    let start = Instant::now();
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let tx = tx.clone();
            sched
                .spawn(move || {
                    for i in 0..per {
                        work(500);
                        tx.send((p, i)).unwrap();
                    }
                })
                .unwrap()
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let rx = rx.clone();
            sched.spawn(move || rx.iter().inspect(|_| work(500)).collect::<Vec<_>>()).unwrap()
        })
        .collect();
    drop(rx);
    producers.into_iter().for_each(|h| h.join().unwrap());
    let got: Vec<Vec<(usize, u64)>> = consumers.into_iter().map(|h| h.join().unwrap()).collect();
    let mut all = HashSet::new();
    for mine in &got {
        let mut last = [None; 4];
        for &(p, i) in mine {
            assert!(last[p] < Some(i), "{what}: producer {p}'s {i} after {:?}", last[p]);
            last[p] = Some(i);
            assert!(all.insert((p, i)), "{what}: ({p}, {i}) delivered twice");
        }
    }
    assert_eq!(all.len() as u64, 4 * per, "{what}: messages lost");
    println!(
        "{what}: 4 x {per} messages to {:?} consumers in {:?}; {} preemptions",
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        start.elapsed(),
        sched.worker_preemptions().iter().sum::<u64>()
    );
}

#[test]
fn four_producers_four_consumers_bounded_16_exactly_once_in_order() {
    let (tx, rx) = channel::bounded(16);
    four_by_four(tx, rx, "bounded(16)");
}

#[test]
fn four_producers_four_consumers_rendezvous_exactly_once_in_order() {
    let (tx, rx) = channel::bounded(0);
    four_by_four(tx, rx, "bounded(0)");
}

#[test]
fn four_producers_four_consumers_unbounded_exactly_once_in_order() {
    let (tx, rx) = channel::unbounded();
    four_by_four(tx, rx, "unbounded");
}

#[test]
fn rendezvous_send_waits_for_a_receiver() {
    let (tx, rx) = channel::bounded(0);
    assert_eq!(tx.try_send(0), Err(TrySendError::Full(0)));
    let sent = Arc::new(AtomicBool::new(false));
    let sent2 = Arc::clone(&sent);
    let h = spawn(move || {
        tx.send(1).unwrap();
        sent2.store(true, Ordering::Release);
    })
    .unwrap();
    // However long we wait, nothing can complete the send but a receive.
    sleep(Duration::from_millis(20));
    assert!(!sent.load(Ordering::Acquire), "a rendezvous send completed without a receiver");
    assert_eq!(rx.len(), 0);
    assert_eq!(rx.recv(), Ok(1));
    h.join().unwrap();
    assert!(sent.load(Ordering::Acquire));
}

/// Both ends on the only worker: every exchange needs the blocked thread to
/// park so that the other one runs.
#[test]
fn green_ping_pong_on_one_worker() {
    let one = common::workers(1);
    let rounds = scaled(10_000);
    let (ping_tx, ping_rx) = channel::bounded(0);
    let (pong_tx, pong_rx) = channel::bounded(0);
    let start = Instant::now();
    let ponger = one
        .spawn(move || {
            for v in ping_rx {
                pong_tx.send(v + 1).unwrap();
            }
        })
        .unwrap();
    let pinger = one
        .spawn(move || {
            for i in 0..rounds {
                ping_tx.send(2 * i).unwrap();
                assert_eq!(pong_rx.recv(), Ok(2 * i + 1));
            }
        })
        .unwrap();
    pinger.join().unwrap();
    ponger.join().unwrap();
    println!("{rounds} round trips on one worker in {:?}", start.elapsed());
}

#[test]
fn send_timeout_on_a_full_channel_returns_the_value() {
    let (tx, rx) = channel::bounded(1);
    tx.send(String::from("first")).unwrap();
    match tx.send_timeout(String::from("second"), Duration::from_millis(2)) {
        Err(SendTimeoutError::Timeout(v)) => assert_eq!(v, "second"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // From a green thread, on a rendezvous channel.
    let (tx0, _rx0) = channel::bounded(0);
    let h = spawn(move || tx0.send_timeout(vec![1, 2, 3], Duration::from_millis(2))).unwrap();
    assert_eq!(h.join().unwrap().unwrap_err().into_inner(), [1, 2, 3]);
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["first"]);
}

#[test]
fn recv_timeout_on_an_empty_channel_times_out() {
    let (tx, rx) = channel::bounded::<u8>(4);
    assert_eq!(rx.recv_timeout(Duration::from_millis(2)), Err(RecvTimeoutError::Timeout));
    let h = spawn(move || rx.recv_timeout(Duration::from_millis(2))).unwrap();
    assert_eq!(h.join().unwrap(), Err(RecvTimeoutError::Timeout));
    drop(tx);
}

/// Senders and receivers all give up after a few microseconds, so many
/// operations race their own timeout against a transfer. A value is either
/// received or returned to its sender, never both, never neither.
fn timeout_stress(cap: usize) {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let per = scaled(5_000) as usize;
    let (tx, rx) = channel::bounded(cap);
    let total_received = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for s in 0..3 {
        let tx = tx.clone();
        let body = move || {
            let mut returned = Vec::new();
            for i in 0..per {
                let v = s * per + i;
                if let Err(e) = tx.send_timeout(v, Duration::from_micros(1 + (i % 20) as u64)) {
                    assert!(e.is_timeout());
                    returned.push(e.into_inner());
                }
            }
            returned
        };
        // Two green senders and one OS sender.
        senders.push(start(body, (s < 2).then_some(&sched)));
    }
    drop(tx);
    let receivers: Vec<_> = (0..3)
        .map(|r| {
            let rx = rx.clone();
            let total = Arc::clone(&total_received);
            sched
                .spawn(move || {
                    let (mut got, mut timeouts) = (Vec::new(), 0u64);
                    loop {
                        match rx.recv_timeout(Duration::from_micros(1 + r * 7)) {
                            Ok(v) => got.push(v),
                            Err(RecvTimeoutError::Timeout) => timeouts += 1,
                            Err(RecvTimeoutError::Disconnected) => break,
                        }
                    }
                    total.fetch_add(got.len(), Ordering::Relaxed);
                    (got, timeouts)
                })
                .unwrap()
        })
        .collect();
    drop(rx);
    let returned: Vec<usize> = senders.into_iter().flat_map(|join| join()).collect();
    let mut seen = vec![false; 3 * per];
    let mut recv_timeouts = 0;
    for h in receivers {
        let (got, timeouts) = h.join().unwrap();
        recv_timeouts += timeouts;
        for v in got {
            assert!(!std::mem::replace(&mut seen[v], true), "{v} received twice");
        }
    }
    for &v in &returned {
        assert!(!std::mem::replace(&mut seen[v], true), "{v} both received and returned, or returned twice");
    }
    assert!(seen.iter().all(|&s| s), "a value was neither received nor returned");
    println!(
        "bounded({cap}): {} received, {} returned by timed-out sends, {recv_timeouts} receive timeouts",
        total_received.load(Ordering::Relaxed),
        returned.len()
    );
}

#[test]
fn timeout_stress_rendezvous_nothing_lost_nothing_duplicated() {
    timeout_stress(0);
}

#[test]
fn timeout_stress_bounded_nothing_lost_nothing_duplicated() {
    timeout_stress(2);
}

#[test]
fn buffered_values_are_received_after_the_senders_drop() {
    let (tx, rx) = channel::bounded(8);
    let tx2 = tx.clone();
    (0..5).for_each(|i| tx.send(i).unwrap());
    drop(tx);
    assert!(!rx.is_disconnected(), "one sender is left");
    tx2.send(5).unwrap();
    drop(tx2);
    assert!(rx.is_disconnected());
    assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
    assert_eq!(rx.recv(), Err(channel::RecvError));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(rx.recv_timeout(Duration::from_secs(1)), Err(RecvTimeoutError::Disconnected));
}

#[test]
fn dropping_the_last_sender_wakes_blocked_receivers() {
    for cap in [0, 3] {
        let (tx, rx) = channel::bounded::<u32>(cap);
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                spawn(move || rx.recv()).unwrap()
            })
            .collect();
        let os = std::thread::spawn(move || rx.recv_timeout(Duration::from_secs(600)));
        // Let them block (the outcome is the same if they have not yet).
        sleep(Duration::from_millis(10));
        drop(tx);
        receivers.into_iter().for_each(|h| assert_eq!(h.join().unwrap(), Err(channel::RecvError)));
        assert_eq!(os.join().unwrap(), Err(RecvTimeoutError::Disconnected));
    }
}

#[test]
fn dropping_the_last_receiver_wakes_blocked_senders_with_their_values() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel::bounded(1);
    tx.send((99, Counted(Arc::clone(&drops)))).unwrap();
    let blocked: Vec<_> = (0..3)
        .map(|i| {
            let (tx, d) = (tx.clone(), Arc::clone(&drops));
            spawn(move || tx.send((i, Counted(d))).unwrap_err().into_inner()).unwrap()
        })
        .collect();
    let os = {
        let (tx, d) = (tx.clone(), Arc::clone(&drops));
        std::thread::spawn(move || tx.send_timeout((3, Counted(d)), Duration::from_secs(600)).unwrap_err())
    };
    // Let them block (the outcome is the same if they have not yet).
    sleep(Duration::from_millis(10));
    drop(rx);
    // The buffered value nobody can receive any more is dropped at once;
    // the blocked senders get theirs back, undropped.
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    let returned: Vec<(usize, Counted)> = blocked.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(returned.iter().map(|r| r.0).collect::<Vec<_>>(), [0, 1, 2]);
    let e = os.join().unwrap();
    assert!(e.is_disconnected());
    assert_eq!(e.into_inner().0, 3);
    assert_eq!(drops.load(Ordering::Relaxed), 2);
    drop(returned);
    // Each value dropped exactly once: the buffered one and the 4 returned.
    assert_eq!(drops.load(Ordering::Relaxed), 5);
    assert!(matches!(tx.try_send((4, Counted(Arc::clone(&drops)))), Err(TrySendError::Disconnected((4, _)))));
    assert_eq!(drops.load(Ordering::Relaxed), 6);
}

#[test]
fn unreceived_values_are_dropped_with_the_channel() {
    for cap in [Some(16), None] {
        let drops = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = match cap {
            Some(c) => channel::bounded(c),
            None => channel::unbounded(),
        };
        (0..10).for_each(|_| tx.send(Counted(Arc::clone(&drops))).unwrap());
        drop(rx.recv().unwrap());
        drop(rx.try_recv().unwrap());
        assert_eq!(drops.load(Ordering::Relaxed), 2);
        let rx2 = rx.clone();
        drop(tx);
        drop(rx);
        assert_eq!(drops.load(Ordering::Relaxed), 2, "a receiver is left");
        drop(rx2);
        assert_eq!(drops.load(Ordering::Relaxed), 10, "{cap:?}: unreceived values leaked");
    }
    // Senders outliving the receivers: the buffer goes with the last receiver.
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel::unbounded();
    (0..7).for_each(|_| tx.send(Counted(Arc::clone(&drops))).unwrap());
    drop(rx);
    assert_eq!(drops.load(Ordering::Relaxed), 7);
    assert!(tx.is_disconnected());
}

#[test]
fn os_and_green_threads_share_one_channel() {
    let per = scaled(20_000) as usize;
    let (tx, rx) = channel::bounded(4);
    let green_sched = common::preemptive(2, Duration::from_micros(100));
    let mut producers = Vec::new();
    for p in 0..4 {
        let tx = tx.clone();
        let body = move || (0..per).for_each(|i| tx.send(p * per + i).unwrap());
        producers.push(start(body, (p % 2 == 0).then_some(&green_sched)));
    }
    drop(tx);
    let green: Vec<_> = (0..2)
        .map(|_| {
            let rx = rx.clone();
            spawn(move || rx.iter().collect::<Vec<_>>()).unwrap()
        })
        .collect();
    let os = std::thread::spawn(move || rx.iter().collect::<Vec<_>>());
    producers.into_iter().for_each(|join| join());
    let mut got: Vec<Vec<usize>> = green.into_iter().map(|h| h.join().unwrap()).collect();
    got.push(os.join().unwrap());
    println!("received {:?} (green, green, OS)", got.iter().map(Vec::len).collect::<Vec<_>>());
    let mut all: Vec<usize> = got.into_iter().flatten().collect();
    all.sort_unstable();
    assert!(all.iter().copied().eq(0..4 * per), "lost or duplicated values");
}

#[test]
fn oneshot_delivers_once_across_threads() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let n = scaled(2_000);
    let mut sum = 0;
    for i in 0..n {
        let (tx, mut rx) = oneshot::channel();
        let h = sched.spawn(move || tx.send(i).unwrap()).unwrap();
        sum += if i % 2 == 0 {
            rx.recv().unwrap()
        } else {
            loop {
                match rx.recv_timeout(Duration::from_micros(5)) {
                    Ok(v) => break v,
                    Err(e) => assert_eq!(e, RecvTimeoutError::Timeout),
                }
            }
        };
        h.join().unwrap();
    }
    assert_eq!(sum, n * (n - 1) / 2);
}

#[test]
fn oneshot_disconnection() {
    let (tx, rx) = oneshot::channel::<u8>();
    let h = spawn(move || rx.recv()).unwrap();
    sleep(Duration::from_millis(5));
    drop(tx);
    assert_eq!(h.join().unwrap(), Err(oneshot::RecvError));

    let (tx, rx) = oneshot::channel();
    drop(rx);
    assert_eq!(tx.send(String::from("back")), Err(String::from("back")));

    let (tx, mut rx) = oneshot::channel();
    assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Empty));
    tx.send(1).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
    assert_eq!(rx.try_recv(), Err(oneshot::TryRecvError::Disconnected));
}

/// Selectors (green, some with tiny timeouts) compete with plain receivers
/// on three channels of different kinds, under preemption: every value is
/// received exactly once, in order per channel for each receiver.
#[test]
fn select_competes_with_receivers_exactly_once() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let per = scaled(10_000);
    let chans = [channel::bounded(0), channel::bounded(3), channel::unbounded()];
    let producers: Vec<_> = chans
        .iter()
        .enumerate()
        .map(|(c, (tx, _))| {
            let tx = tx.clone();
            sched.spawn(move || (0..per).for_each(|i| tx.send((c, i)).unwrap())).unwrap()
        })
        .collect();
    let rxs: Vec<Receiver<(usize, u64)>> = chans.iter().map(|(_, rx)| rx.clone()).collect();
    drop(chans);
    let selectors: Vec<_> = (0..3)
        .map(|s| {
            let rxs = rxs.clone();
            sched
                .spawn(move || {
                    let (mut got, mut timeouts) = (Vec::new(), 0u64);
                    let mut live: Vec<&Receiver<_>> = rxs.iter().collect();
                    while !live.is_empty() {
                        let r = if s == 0 {
                            Ok(channel::select(&live))
                        } else {
                            channel::select_timeout(&live, Duration::from_micros(s * 3))
                        };
                        match r {
                            Ok((_, Ok(v))) => got.push(v),
                            Ok((i, Err(_))) => {
                                live.remove(i);
                            }
                            Err(_) => timeouts += 1,
                        }
                    }
                    (got, timeouts)
                })
                .unwrap()
        })
        .collect();
    let plain: Vec<_> =
        rxs.into_iter().map(|rx| sched.spawn(move || (rx.iter().collect::<Vec<_>>(), 0)).unwrap()).collect();
    producers.into_iter().for_each(|h| h.join().unwrap());
    let mut all = HashSet::new();
    let mut report = Vec::new();
    for h in selectors.into_iter().chain(plain) {
        let (got, timeouts) = h.join().unwrap();
        report.push((got.len(), timeouts));
        let mut last = [None; 3];
        for (c, i) in got {
            assert!(last[c] < Some(i), "channel {c}: {i} after {:?}", last[c]);
            last[c] = Some(i);
            assert!(all.insert((c, i)), "({c}, {i}) received twice");
        }
    }
    assert_eq!(all.len() as u64, 3 * per, "values lost");
    println!("(received, timeouts) per selector then per plain receiver: {report:?}");
}

#[test]
fn select_wakes_on_a_value_or_a_disconnection() {
    let (tx_a, rx_a) = channel::bounded::<u32>(0);
    let (tx_b, rx_b) = channel::unbounded::<u32>();
    let (step_tx, step_rx) = channel::unbounded::<()>();
    let h = spawn(move || {
        let first = channel::select(&[&rx_a, &rx_b]);
        step_tx.send(()).unwrap();
        let second = channel::select(&[&rx_a, &rx_b]);
        (first, second)
    })
    .unwrap();
    // The sleeps let the thread block in each select first, so that the
    // wake-ups are tested; the outcome does not depend on them (a slow
    // emulator may run the thread late): `tx_a` goes only after the first
    // select returned.
    sleep(Duration::from_millis(5));
    tx_b.send(7).unwrap();
    step_rx.recv().unwrap();
    sleep(Duration::from_millis(5));
    drop(tx_a);
    let (first, second) = h.join().unwrap();
    assert_eq!(first, (1, Ok(7)));
    assert_eq!(second, (0, Err(channel::RecvError)));
    assert_eq!(
        channel::try_select(&[&channel::unbounded::<u8>().1]),
        Err(preemptive_mlthreading_rust::sync::WouldBlock)
    );
    drop(tx_b);
}

/// Timed selects racing timed sends on rendezvous channels: each value is
/// received by the select or returned to its sender.
#[test]
fn select_timeout_races_send_timeout_nothing_lost() {
    let sched = common::preemptive(2, Duration::from_micros(100));
    let per = scaled(5_000) as usize;
    let (tx_a, rx_a) = channel::bounded(0);
    let (tx_b, rx_b) = channel::bounded(0);
    let senders: Vec<_> = [tx_a, tx_b]
        .into_iter()
        .enumerate()
        .map(|(c, tx)| {
            sched
                .spawn(move || {
                    (0..per)
                        .filter_map(|i| tx.send_timeout(c * per + i, Duration::from_micros(1 + i as u64 % 9)).err())
                        .map(SendTimeoutError::into_inner)
                        .collect::<Vec<_>>()
                })
                .unwrap()
        })
        .collect();
    let selector = sched
        .spawn(move || {
            let mut got = Vec::new();
            loop {
                match channel::select_timeout(&[&rx_a, &rx_b], Duration::from_micros(2)) {
                    Ok((_, Ok(v))) => got.push(v),
                    Ok((_, Err(_))) if rx_a.is_disconnected() && rx_b.is_disconnected() => break got,
                    _ => {}
                }
            }
        })
        .unwrap();
    let returned: Vec<usize> = senders.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let got = selector.join().unwrap();
    let mut seen = vec![false; 2 * per];
    for &v in got.iter().chain(&returned) {
        assert!(!std::mem::replace(&mut seen[v], true), "{v} delivered twice");
    }
    assert!(seen.iter().all(|&s| s), "a value was lost");
    println!("{} selected, {} returned to timed-out senders", got.len(), returned.len());
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<X: Send + Sync>() {}
    send_sync::<Sender<String>>();
    send_sync::<Receiver<String>>();
    send_sync::<oneshot::Sender<String>>();
    send_sync::<oneshot::Receiver<String>>();
}

/// A value holding a sender of its own channel: dropping the last
/// receiver drops it (outside the channel's lock, or this would deadlock),
/// which breaks the reference cycle.
#[test]
fn a_buffered_value_holding_a_sender_of_its_own_channel_is_dropped() {
    struct Msg {
        _tx: Sender<Msg>,
        _count: Counted,
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel::unbounded();
    tx.send(Msg { _tx: tx.clone(), _count: Counted(Arc::clone(&drops)) }).unwrap();
    drop(tx);
    assert!(!rx.is_disconnected(), "the buffered value holds a sender");
    drop(rx);
    assert_eq!(drops.load(Ordering::Relaxed), 1);
}

/// An OS thread blocked in a select sleeps on the select's own futex word:
/// a value, a disconnection and a timeout each end the wait.
#[test]
fn an_os_thread_blocked_in_select_is_woken_by_green_senders() {
    let (tx_a, rx_a) = channel::bounded::<u32>(0);
    let (tx_b, rx_b) = channel::unbounded::<u32>();
    let (step_tx, step_rx) = channel::unbounded::<()>();
    let os = std::thread::spawn(move || {
        let timed_out = channel::select_timeout(&[&rx_a, &rx_b], Duration::from_millis(10)).is_err();
        step_tx.send(()).unwrap();
        let first = channel::select(&[&rx_a, &rx_b]);
        step_tx.send(()).unwrap();
        let second = channel::select(&[&rx_a, &rx_b]);
        (timed_out, first, second)
    });
    step_rx.recv().unwrap();
    let green = spawn(move || {
        sleep(Duration::from_millis(5));
        tx_a.send(3).unwrap();
        step_rx.recv().unwrap();
        sleep(Duration::from_millis(5));
        drop(tx_b);
        tx_a
    })
    .unwrap();
    let (timed_out, first, second) = os.join().unwrap();
    drop(green.join().unwrap());
    assert!(timed_out);
    assert_eq!(first, (0, Ok(3)));
    assert_eq!(second, (1, Err(channel::RecvError)));
}

/// Two channels that are always ready: each select takes from either, so
/// a busy first channel no longer starves the second (it got nothing when
/// the select always tried the receivers in the order given).
#[test]
fn select_is_fair_among_ready_receivers() {
    let (tx_a, rx_a) = channel::unbounded::<u8>();
    let (tx_b, rx_b) = channel::unbounded::<u8>();
    let rounds = 10_000;
    let mut picked = [0u32; 2];
    for _ in 0..rounds {
        tx_a.send(0).unwrap();
        tx_b.send(1).unwrap();
        let (i, v) = channel::select(&[&rx_a, &rx_b]);
        assert_eq!(v, Ok(i as u8));
        picked[i] += 1;
        // The other one's value stays for the next round: both stay ready.
    }
    println!("of {rounds} selects over two ready channels: {picked:?}");
    assert!(picked.iter().all(|&n| n > rounds / 10), "{picked:?}");
    assert_eq!(rx_a.len() as u32, picked[1], "every value not selected is still there");
    assert_eq!(rx_b.len() as u32, picked[0]);
}

/// `is_full`, `same_channel` and the deadline forms.
#[test]
fn is_full_same_channel_and_deadlines() {
    use std::time::Instant;
    let (tx, rx) = channel::bounded::<u32>(2);
    assert!(!tx.is_full());
    tx.send(1).unwrap();
    tx.send(2).unwrap();
    assert!(tx.is_full() && rx.is_full());
    assert!(tx.same_channel(&tx.clone()) && rx.same_channel(&rx.clone()));
    assert!(!rx.same_channel(&channel::bounded::<u32>(2).1));
    let soon = || Instant::now() + Duration::from_millis(2);
    assert_eq!(tx.send_deadline(3, soon()), Err(channel::SendTimeoutError::Timeout(3)));
    assert_eq!(rx.recv_deadline(soon()), Ok(1));
    assert_eq!(channel::select_deadline(&[&rx], soon()), Ok((0, Ok(2))));
    assert_eq!(rx.recv_deadline(soon()), Err(channel::RecvTimeoutError::Timeout));
    assert_eq!(channel::select_deadline(&[&rx], soon()), Err(preemptive_mlthreading_rust::sync::TimedOut));
    // A deadline already past: a ready value is still taken, nothing waits.
    tx.send(4).unwrap();
    assert_eq!(rx.recv_deadline(Instant::now() - Duration::from_millis(1)), Ok(4));
    drop(tx);
    assert_eq!(rx.recv_deadline(soon()), Err(channel::RecvTimeoutError::Disconnected));
    // Handles cross catch_unwind without AssertUnwindSafe.
    let (tx, rx) = channel::unbounded::<u8>();
    let r = std::panic::catch_unwind(|| {
        tx.send(9).unwrap();
        panic!("after a send");
    });
    assert!(r.is_err());
    assert_eq!(rx.try_recv(), Ok(9));
}

/// A `Select` over channels of two value types, fed by green senders,
/// drained by an OS thread with timed selects: every value arrives once,
/// in order per channel, and each channel's disconnection is seen.
#[test]
fn select_over_mixed_types_loses_nothing() {
    use channel::Select;
    let n = scaled(5_000);
    let (tx_n, rx_n) = channel::bounded::<u64>(4);
    let (tx_s, rx_s) = channel::bounded::<String>(0);
    let a = spawn(move || (0..n).for_each(|i| tx_n.send(i).unwrap())).unwrap();
    let b = spawn(move || (0..n).for_each(|i| tx_s.send(i.to_string()).unwrap())).unwrap();
    let (mut numbers, mut words) = (Vec::new(), Vec::new());
    let (mut n_open, mut s_open, mut timeouts) = (true, true, 0);
    while n_open || s_open {
        let mut sel = Select::new();
        let i_n = n_open.then(|| sel.recv(&rx_n));
        let i_s = s_open.then(|| sel.recv(&rx_s));
        let Ok(op) = sel.select_timeout(Duration::from_millis(1)) else {
            timeouts += 1;
            continue;
        };
        if Some(op.index()) == i_n {
            match op.recv(&rx_n) {
                Ok(v) => numbers.push(v),
                Err(_) => n_open = false,
            }
        } else {
            match op.recv(&rx_s) {
                Ok(v) => words.push(v),
                Err(_) => s_open = false,
            }
        }
        let _ = i_s;
    }
    a.join().unwrap();
    b.join().unwrap();
    println!("{} numbers and {} words through one Select; {timeouts} timed out", numbers.len(), words.len());
    assert_eq!(numbers, (0..n).collect::<Vec<_>>());
    assert_eq!(words, (0..n).map(|i| i.to_string()).collect::<Vec<_>>());
}

/// `try_select`, the chosen arm's checks, and fairness through the builder.
#[test]
fn select_builder_edges() {
    use channel::Select;
    let (tx_a, rx_a) = channel::unbounded::<u8>();
    let (tx_b, rx_b) = channel::unbounded::<&str>();
    let mut picked = [0u32; 2];
    for _ in 0..2000 {
        tx_a.send(1).unwrap();
        tx_b.send("b").unwrap();
        let mut sel = Select::new();
        let ia = sel.recv(&rx_a);
        let ib = sel.recv(&rx_b);
        let op = sel.try_select().expect("both are ready");
        let i = op.index();
        if i == ia {
            assert_eq!(op.recv(&rx_a), Ok(1));
        } else {
            assert_eq!(i, ib);
            assert_eq!(op.recv(&rx_b), Ok("b"));
        }
        picked[i] += 1;
    }
    assert!(picked.iter().all(|&p| p > 200), "{picked:?}");
    // Given the wrong receiver, `recv` panics instead of reading a slot of
    // another type.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut sel = Select::new();
        sel.recv(&rx_a);
        let op = sel.try_select().unwrap();
        let _ = op.recv(&rx_b);
    }));
    assert!(r.is_err());
    // A send arm whose receivers are gone completes with its value back.
    let (tx_d, rx_d) = channel::bounded::<String>(0);
    drop(rx_d);
    let mut sel = Select::new();
    sel.send(&tx_d, "kept".to_owned());
    let op = sel.select();
    assert_eq!(op.send(&tx_d), Err(channel::SendError("kept".to_owned())));
    // A Select whose send arm completed refuses to select again (it would
    // offer nothing to a receiver).
    let (tx_e, rx_e) = channel::bounded::<u8>(1);
    let mut sel = Select::new();
    sel.send(&tx_e, 1);
    sel.select().send(&tx_e).unwrap();
    let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = sel.try_select().map(|op| op.send(&tx_e));
    }));
    assert!(again.is_err());
    assert_eq!((rx_e.try_recv(), rx_e.try_recv().is_err()), (Ok(1), true), "exactly one value went");
    // Only a bounding arm: it fires.
    assert_eq!(preemptive_mlthreading_rust::select! { default => 1 }, 1);
    assert_eq!(preemptive_mlthreading_rust::select! { timeout(Duration::from_millis(1)) => 2 }, 2);
    // A disconnected arm is ready, with RecvError.
    let (tx_c, rx_c) = channel::bounded::<u8>(1);
    drop(tx_c);
    let mut sel = Select::new();
    sel.recv(&rx_c);
    let op = sel.select();
    assert_eq!(op.recv(&rx_c), Err(channel::RecvError));
}

/// `select!`: arms of two types, block and expression bodies with and
/// without commas, `break` out of a loop from an arm, a deadline arm, and
/// `?` in an arm.
#[test]
fn select_macro_arms_bodies_and_control_flow() {
    use preemptive_mlthreading_rust::select;
    let (tx_n, rx_n) = channel::unbounded::<u64>();
    let (tx_s, rx_s) = channel::bounded::<String>(1);
    let n = scaled(2_000);
    let a = spawn(move || (0..n).for_each(|i| tx_n.send(i).unwrap())).unwrap();
    let b = spawn(move || (0..n).for_each(|i| tx_s.send(format!("s{i}")).unwrap())).unwrap();
    let (mut sum, mut words, mut closed) = (0u64, 0u64, 0);
    loop {
        select! {
            recv(rx_n) -> v => {
                match v {
                    Ok(v) => sum += v,
                    Err(_) => closed |= 1,
                }
            }
            recv(rx_s) -> w => match w {
                Ok(w) => {
                    assert_eq!(w, format!("s{words}"));
                    words += 1;
                }
                Err(_) => closed |= 2,
            },
            timeout(Duration::from_secs(30)) => panic!("nothing arrived for 30 s"),
        }
        if closed == 3 {
            break;
        }
    }
    a.join().unwrap();
    b.join().unwrap();
    assert_eq!((sum, words), (n * (n - 1) / 2, n));
    // `break` from inside an arm, and a deadline arm that fires.
    let (_keep, rx) = channel::unbounded::<u8>();
    let mut rounds = 0;
    let fired = loop {
        rounds += 1;
        select! {
            recv(rx) -> _ => unreachable!("nothing is ever sent"),
            deadline(Instant::now() + Duration::from_millis(1)) => break rounds,
        }
    };
    assert_eq!(fired, 1);
    // `?` in an arm returns from the enclosing function.
    fn first(rx: &Receiver<u8>) -> Result<u8, channel::RecvError> {
        Ok(select! { recv(rx) -> v => v? })
    }
    let (tx, rx) = channel::unbounded::<u8>();
    tx.send(5).unwrap();
    assert_eq!(first(&rx), Ok(5));
    drop(tx);
    assert_eq!(first(&rx), Err(channel::RecvError));
    println!("select!: {n} numbers and {n} words, then a deadline arm and `?`");
}

/// Selects with send arms meet selects with receive arms, plain receivers
/// and each other on a rendezvous and a bounded channel, on two preemptive
/// workers and OS threads, with timeouts racing every transfer: each value
/// whose send arm completed is received exactly once, and nothing else is.
#[test]
fn select_send_arms_meet_receivers_and_selects_exactly_once() {
    use preemptive_mlthreading_rust::select;
    let sched = common::preemptive(2, Duration::from_micros(100));
    let per = scaled(3_000);
    let (tx_a, rx_a) = channel::bounded::<u64>(0);
    let (tx_b, rx_b) = channel::bounded::<u64>(2);
    let producer = move |p: u64, tx_a: Sender<u64>, tx_b: Sender<u64>| {
        move || {
            let (mut sent, mut next, mut timeouts) = (Vec::new(), 0u64, 0u64);
            while next < per {
                let id = p * 1_000_000 + next;
                select! {
                    send(tx_a, id) -> r => { r.unwrap(); sent.push(id); next += 1; }
                    send(tx_b, id) -> r => { r.unwrap(); sent.push(id); next += 1; }
                    timeout(Duration::from_micros(50 + p * 10)) => timeouts += 1,
                }
            }
            (sent, timeouts)
        }
    };
    let consumer = |rx_a: Receiver<u64>, rx_b: Receiver<u64>, plain: bool| {
        move || {
            let mut got = Vec::new();
            let (mut a_open, mut b_open) = (true, true);
            while a_open || b_open {
                if plain {
                    match rx_a.recv_timeout(Duration::from_micros(30)) {
                        Ok(v) => got.push(v),
                        Err(RecvTimeoutError::Disconnected) => a_open = false,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    b_open = a_open;
                    continue;
                }
                select! {
                    recv(rx_a) -> v => match v { Ok(v) => got.push(v), Err(_) => a_open = false },
                    recv(rx_b) -> v => match v { Ok(v) => got.push(v), Err(_) => b_open = false },
                }
            }
            // A plain receiver only drains `a`; whatever is left in `b` is
            // taken by the selects, which run until both are disconnected.
            got
        }
    };
    let producers = vec![
        start(producer(1, tx_a.clone(), tx_b.clone()), Some(&sched)),
        start(producer(2, tx_a.clone(), tx_b.clone()), Some(&sched)),
        start(producer(3, tx_a.clone(), tx_b.clone()), None),
    ];
    drop((tx_a, tx_b));
    let consumers = vec![
        start(consumer(rx_a.clone(), rx_b.clone(), false), Some(&sched)),
        start(consumer(rx_a.clone(), rx_b.clone(), false), None),
        start(consumer(rx_a.clone(), rx_b.clone(), true), Some(&sched)),
    ];
    drop((rx_a, rx_b));
    let (mut sent, mut timeouts) = (Vec::new(), 0);
    for p in producers {
        let (s, t) = p();
        sent.extend(s);
        timeouts += t;
    }
    let mut got: Vec<u64> = consumers.into_iter().flat_map(|c| c()).collect();
    let received = got.len();
    sent.sort_unstable();
    got.sort_unstable();
    println!("{} values sent through select send arms ({timeouts} timed-out rounds), {received} received", sent.len());
    assert_eq!(sent.len() as u64, 3 * per);
    assert_eq!(got, sent, "every completed send received exactly once");
}
