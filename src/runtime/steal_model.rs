//! Loom models of work stealing's protocols (`worker/steal.rs`, module
//! docs). The worker's own code switches stacks and sleeps on futexes,
//! which loom cannot run, so these mirror its steps, orderings included,
//! each beside the name of the function it stands for. A change to those
//! functions' atomics must be made here too.
//!
//! The property: a thief's request and the victim's answer lose nothing
//! and run nothing twice. Every thread the victim queued runs exactly
//! once, on the victim or on the thief, whether the request lands before,
//! during or after the victim's last scheduling point
//! (`Worker::request_steal` against `Worker::serve_steal`).

use super::inbox::Inbox;
use super::inbox::loom_tests::{Item, item};
use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// `Worker::steal_line`: the request word (thief index + 1) and the
/// waiting hint.
struct Line {
    request: AtomicUsize,
    waiting: AtomicU32,
}

/// What one model run recorded: which items ran, each once.
type Ran = Arc<Mutex<Vec<(usize, u8)>>>;

/// The victim gives at most half of its waiting threads, rounded up
/// (`serve_steal_slow`, generous as from the signal handler: the model's
/// victim has no partner to keep a thread for).
fn serve(line: &Line, queue: &mut Vec<Box<Item>>, thief_inbox: &Inbox<Box<Item>>) {
    if line.request.load(Ordering::Relaxed) == 0 {
        return;
    }
    if line.request.swap(0, Ordering::Acquire) == 0 {
        return;
    }
    let give = queue.len().div_ceil(2);
    for it in queue.drain(..give) {
        thief_inbox.push(it);
    }
    line.waiting.store(queue.len() as u32, Ordering::Relaxed);
}

/// A victim with three queued threads runs them one by one, answering a
/// request at every scheduling point and once more when idle; a thief asks
/// while the hint shows work, and runs whatever arrives in its inbox.
#[test]
fn loom_requested_threads_run_exactly_once() {
    loom::model(|| {
        let line = Arc::new(Line { request: AtomicUsize::new(0), waiting: AtomicU32::new(3) });
        let thief_inbox = Arc::new(Inbox::<Box<Item>>::new());
        let ran: Ran = Arc::new(Mutex::new(Vec::new()));
        let victim_done = Arc::new(AtomicUsize::new(0));

        let victim = {
            let (line, inbox, ran, done) =
                (Arc::clone(&line), Arc::clone(&thief_inbox), Arc::clone(&ran), Arc::clone(&victim_done));
            thread::spawn(move || {
                let mut queue: Vec<Box<Item>> = (0..3).map(|i| item(0, i)).collect();
                loop {
                    // `Worker::poll` at the scheduling point.
                    serve(&line, &mut queue, &inbox);
                    if queue.is_empty() {
                        break;
                    }
                    let it = queue.remove(0);
                    line.waiting.store(queue.len() as u32, Ordering::Relaxed);
                    ran.lock().unwrap().push(it.tag);
                }
                done.store(1, Ordering::SeqCst);
                // Idle: the scheduling loop polls once more.
                serve(&line, &mut queue, &inbox);
            })
        };

        // The thief: `Worker::request_steal`, then its idle spin on the inbox.
        let mut asked = false;
        loop {
            if !asked
                && line.waiting.load(Ordering::Relaxed) > 0
                && line.request.compare_exchange(0, 1, Ordering::Release, Ordering::Relaxed).is_ok()
            {
                asked = true;
            }
            let mut got = false;
            for it in thief_inbox.take_all() {
                ran.lock().unwrap().push(it.tag);
                got = true;
            }
            if got || victim_done.load(Ordering::SeqCst) == 1 {
                break;
            }
            thread::yield_now();
        }
        victim.join().unwrap();
        // Whatever the victim answered after the thief stopped looking.
        for it in thief_inbox.take_all() {
            ran.lock().unwrap().push(it.tag);
        }
        let mut ran = ran.lock().unwrap().clone();
        ran.sort_unstable();
        assert_eq!(ran, [(0, 0), (0, 1), (0, 2)], "a thread lost or run twice");
    });
}
