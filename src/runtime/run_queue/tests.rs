//! The run queue's policy, entry by entry.

use super::*;
use crate::runtime::pool::Pool;
use crate::runtime::task::test_tasks::{pool, tag, tagged};
use std::sync::Arc;

/// A queue filled with `(priority, tag)` entries, in that order.
fn queue(pool: &Arc<Pool>, entries: &[(u8, u64)]) -> RunQueue {
    let mut q = RunQueue::default();
    for &(priority, t) in entries {
        q.push(tagged(pool, priority, t));
    }
    q
}

fn tags(tasks: impl IntoIterator<Item = TaskRef>) -> Vec<u64> {
    tasks.into_iter().map(|t| tag(&t)).collect()
}

/// Every entry, by the pops a free CPU would make (few enough that no
/// aging turn comes in).
fn pop_all(q: &mut RunQueue) -> Vec<u64> {
    tags(std::iter::from_fn(|| q.pop(None)))
}

#[test]
fn higher_levels_first_and_fifo_within_a_level() {
    let pool = pool();
    let mut q = queue(&pool, &[(1, 101), (3, 301), (1, 102), (3, 302), (0, 1), (1, 103)]);
    assert_eq!(pop_all(&mut q), [301, 302, 101, 102, 103, 1]);
    assert!(q.pop(None).is_none());
}

#[test]
fn push_front_goes_ahead_of_its_own_level_only() {
    let pool = pool();
    let mut q = queue(&pool, &[(2, 201), (2, 202), (4, 401)]);
    q.push_front(tagged(&pool, 2, 200));
    // On an empty level it is the tail too: a later push lines up behind.
    q.push_front(tagged(&pool, 1, 100));
    q.push(tagged(&pool, 1, 101));
    assert_eq!(pop_all(&mut q), [401, 200, 201, 202, 100, 101]);
}

#[test]
fn a_running_thread_keeps_the_cpu_only_over_lower_levels() {
    let pool = pool();
    let mut q = queue(&pool, &[(3, 301), (3, 302), (3, 303)]);
    assert!(q.pop(Some(4)).is_none(), "level 4 runs on over level 3");
    assert_eq!(q.top_priority(), Some(3), "and nothing left the queue");
    // A yield at the same level hands over to the head of the level.
    assert_eq!(q.pop(Some(3)).map(|t| tag(&t)), Some(301));
    assert_eq!(q.pop(Some(0)).map(|t| tag(&t)), Some(302));
    assert_eq!(q.pop(None).map(|t| tag(&t)), Some(303));
    assert!(q.pop(Some(0)).is_none());
}

/// The decision at which the entry tagged `wanted` comes out, while a
/// new level-`high` entry arrives before every decision.
fn decisions_until(q: &mut RunQueue, pool: &Arc<Pool>, high: u8, wanted: u64) -> u32 {
    for decision in 1..=2 * AGING_PERIOD {
        q.push(tagged(pool, high, 1000));
        let t = q.pop(None).expect("something waits");
        if tag(&t) == wanted {
            return decision;
        }
        assert_eq!(tag(&t), 1000, "decision {decision} went to neither level");
    }
    panic!("{wanted} starved for {} decisions", 2 * AGING_PERIOD)
}

#[test]
fn a_waiting_level_gets_the_aging_period_th_decision_that_passes_it_over() {
    let pool = pool();
    let mut q = queue(&pool, &[(0, 1)]);
    assert_eq!(decisions_until(&mut q, &pool, 5, 1), AGING_PERIOD);
}

#[test]
fn a_thread_that_never_yields_is_passed_over_on_the_aging_period_th_decision() {
    let pool = pool();
    let mut q = queue(&pool, &[(0, 1)]);
    for decision in 1..AGING_PERIOD {
        assert!(q.pop(Some(5)).is_none(), "decision {decision}: level 5 keeps the CPU");
    }
    assert_eq!(q.pop(Some(5)).map(|t| tag(&t)), Some(1));
}

#[test]
fn aging_turns_go_down_through_the_waiting_levels_and_wrap() {
    let pool = pool();
    let mut q = queue(&pool, &[(2, 201), (6, 601), (2, 202), (6, 602)]);
    let mut turns = Vec::new();
    for decision in 1..=4 * AGING_PERIOD {
        q.push(tagged(&pool, 10, 1000));
        match tag(&q.pop(None).unwrap()) {
            1000 => {}
            t => turns.push((decision, t)),
        }
    }
    let p = AGING_PERIOD;
    assert_eq!(turns, [(p, 601), (2 * p, 201), (3 * p, 602), (4 * p, 202)]);
}

/// A queue whose level-0 entry (tag 1) was passed over by level-5 ones
/// in `AGING_PERIOD - 1` decisions in a row.
fn one_short_of_an_aging_turn(pool: &Arc<Pool>) -> RunQueue {
    let mut q = queue(pool, &[(0, 1)]);
    for _ in 1..AGING_PERIOD {
        q.push(tagged(pool, 5, 1000));
        assert_eq!(tag(&q.pop(None).unwrap()), 1000);
    }
    q
}

#[test]
fn a_decision_with_the_cpu_at_the_lowest_waiting_level_restarts_the_count() {
    let pool = pool();
    let mut q = one_short_of_an_aging_turn(&pool);
    // A level-0 thread that had the CPU now yields to a level-5 one
    // woken over it: nobody was starving.
    q.push(tagged(&pool, 5, 1000));
    assert_eq!(q.pop(Some(0)).map(|t| tag(&t)), Some(1000));
    assert_eq!(decisions_until(&mut q, &pool, 5, 1), AGING_PERIOD);
}

#[test]
fn a_decision_at_the_only_waiting_level_ends_the_run_of_pass_overs() {
    let pool = pool();
    let mut q = one_short_of_an_aging_turn(&pool);
    // The CPU is free and only level 0 waits: it gets the turn, so the
    // next pass-over is the first of a new run, not the 256th.
    let t = q.pop(None).unwrap();
    assert_eq!(tag(&t), 1);
    q.push(t);
    assert_eq!(decisions_until(&mut q, &pool, 5, 1), AGING_PERIOD);
}

#[test]
fn rotate_swaps_the_running_thread_for_the_head_of_its_level() {
    let pool = pool();
    let mut q = queue(&pool, &[(2, 201), (2, 202)]);
    let mut seen = None;
    let head = q.rotate(tagged(&pool, 2, 200), |t| {
        seen = Some(t.spec.slice_ns);
        true
    });
    assert_eq!(head.map(|t| tag(&t)).ok(), Some(201));
    assert_eq!(seen, Some(201), "`ready` is asked about the head");
    assert_eq!(tags(q.drain()), [202, 200]);

    let mut q = queue(&pool, &[(2, 201)]);
    assert_eq!(q.rotate(tagged(&pool, 2, 200), |_| true).map(|t| tag(&t)).ok(), Some(201));
    assert_eq!(tags(q.drain()), [200]);
}

#[test]
fn rotate_restarts_the_aging_count() {
    let pool = pool();
    let mut q = one_short_of_an_aging_turn(&pool);
    // The low entry leaves some other way; a yield then rotates level 5.
    assert_eq!(q.take_first(0, |t| t.spec.priority == 0).map(|t| tag(&t)), Some(1));
    q.push(tagged(&pool, 5, 1000));
    assert!(q.rotate(tagged(&pool, 5, 1000), |_| true).is_ok());
    drop(q.drain());
    q.push(tagged(&pool, 0, 1));
    assert_eq!(decisions_until(&mut q, &pool, 5, 1), AGING_PERIOD);
}

#[test]
fn a_refused_rotate_gives_the_task_back_and_changes_nothing() {
    let pool = pool();
    let back = |r: Result<TaskRef, TaskRef>| r.err().map(|t| tag(&t));

    let mut q = RunQueue::default();
    assert_eq!(back(q.rotate(tagged(&pool, 2, 200), |_| true)), Some(200), "nothing waits");
    assert_eq!(q.top_priority(), None);

    let mut q = queue(&pool, &[(2, 201), (1, 101), (2, 202)]);
    assert_eq!(back(q.rotate(tagged(&pool, 2, 200), |_| true)), Some(200), "another level waits");
    assert_eq!(pop_all(&mut q), [201, 202, 101]);

    let mut q = queue(&pool, &[(2, 201), (2, 202)]);
    assert_eq!(back(q.rotate(tagged(&pool, 2, 200), |_| false)), Some(200), "the head is not ready");
    assert_eq!(pop_all(&mut q), [201, 202]);
}

#[test]
fn take_first_walks_levels_from_the_top_down_to_min() {
    let pool = pool();
    let mut q = queue(&pool, &[(1, 101), (4, 401), (1, 102), (4, 402), (1, 103)]);
    let mut asked = Vec::new();
    let even = q.take_first(0, |t| {
        asked.push(t.spec.slice_ns);
        t.spec.slice_ns % 2 == 0
    });
    assert_eq!(even.map(|t| tag(&t)), Some(402));
    assert_eq!(asked, [401, 402], "level 4 in FIFO order, and no further");
    assert!(q.take_first(2, |t| t.spec.priority == 1).is_none(), "level 1 is below min");
    // The tail of level 1: a later push must line up behind 102.
    assert_eq!(q.take_first(1, |t| t.spec.slice_ns == 103).map(|t| tag(&t)), Some(103));
    q.push(tagged(&pool, 1, 104));
    // The head of level 1, then level 4's only entry, which empties it.
    assert_eq!(q.take_first(0, |t| t.spec.slice_ns == 101).map(|t| tag(&t)), Some(101));
    assert_eq!(q.take_first(0, |t| t.spec.slice_ns == 401).map(|t| tag(&t)), Some(401));
    assert_eq!(q.top_priority(), Some(1));
    assert!(q.take_first(0, |_| false).is_none());
    assert_eq!(pop_all(&mut q), [102, 104]);
}

#[test]
fn top_priority_is_the_highest_waiting_level() {
    let pool = pool();
    let mut q = RunQueue::default();
    assert_eq!(q.top_priority(), None);
    q.push(tagged(&pool, 0, 1));
    assert_eq!(q.top_priority(), Some(0));
    q.push(tagged(&pool, MAX_PRIORITY, 2));
    q.push(tagged(&pool, 7, 3));
    assert_eq!(q.top_priority(), Some(MAX_PRIORITY));
    assert_eq!(q.pop(None).map(|t| tag(&t)), Some(2));
    assert_eq!(q.top_priority(), Some(7));
}

#[test]
fn len_counts_every_way_in_and_out() {
    let pool = pool();
    let mut q = queue(&pool, &[(1, 101), (2, 201)]);
    q.push_front(tagged(&pool, 1, 100));
    q.push_wake(tagged(&pool, 2, 200));
    assert_eq!(q.len(), 4);
    assert!(q.pop(None).is_some());
    assert!(q.take_first(0, |t| t.spec.slice_ns == 101).is_some());
    assert!(q.take_first(0, |t| t.spec.slice_ns == 100).is_some());
    assert!(q.rotate(tagged(&pool, 2, 202), |_| true).is_ok(), "in one, out one");
    assert_eq!(q.len(), 1);
    drop(q.drain());
    assert_eq!(q.len(), 0);
}

#[test]
fn the_wake_slot_holds_one_thread_at_the_front_of_its_level() {
    let pool = pool();
    let mut q = queue(&pool, &[(2, 201), (2, 202), (4, 401)]);
    q.push_wake(tagged(&pool, 2, 210));
    // A second wake-up takes the slot; the first goes to the back.
    q.push_wake(tagged(&pool, 2, 211));
    assert_eq!(pop_all(&mut q), [401, 211, 201, 202, 210]);
    // Across levels: the old slot holder keeps its place at the front
    // of its own level only while it is still there.
    let mut q = queue(&pool, &[(1, 101)]);
    q.push_wake(tagged(&pool, 1, 110));
    q.push_wake(tagged(&pool, 3, 310));
    assert_eq!(pop_all(&mut q), [310, 101, 110]);
}

#[test]
fn a_slot_holder_that_left_is_not_moved_by_the_next_wake_up() {
    let pool = pool();
    let mut q = queue(&pool, &[(2, 201)]);
    q.push_wake(tagged(&pool, 2, 210));
    let t = q.pop(None).unwrap();
    assert_eq!(tag(&t), 210);
    // It comes back at the front by a timer, then another wake-up.
    q.push_front(t);
    q.push_wake(tagged(&pool, 2, 211));
    assert_eq!(pop_all(&mut q), [211, 210, 201]);
}

#[test]
fn drain_empties_the_queue_lowest_level_first() {
    let pool = pool();
    let mut q = queue(&pool, &[(3, 301), (0, 1), (3, 302), (0, 2), (MAX_PRIORITY, 9)]);
    assert_eq!(tags(q.drain()), [1, 2, 301, 302, 9]);
    assert_eq!(q.top_priority(), None);
    assert!(q.pop(None).is_none());
    assert!(q.drain().is_empty());
}

#[test]
fn dropping_a_queue_drops_every_task_in_it() {
    let pool = pool();
    let before = Arc::strong_count(&pool);
    let q = queue(&pool, &[(3, 301), (0, 1), (3, 302)]);
    assert_eq!(Arc::strong_count(&pool), before + 3);
    drop(q);
    assert_eq!(Arc::strong_count(&pool), before);
}
