//! [`Select`]: one wait over receivers of different value types, with
//! non-waiting, timed and deadline forms, fair among ready receivers.
//!
//! Receive arms only: a send arm would need the two sides of a rendezvous
//! to both claim their selections at once (crossbeam does it with a
//! handshake after the claim), which the channel's claim-and-transfer
//! under one lock does not do yet. Meanwhile a send that must not wait is
//! a `try_send` before the select or after it.

use super::chan::{RecvArm, SelectArm, select_arms};
use super::{Receiver, RecvError, Wait};
use crate::sync::error::{TimedOut, WouldBlock, deadline_after};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A select over receivers of any value types, built one arm at a time.
///
/// Each [`recv`](Self::recv) adds an arm and returns its index; a select
/// waits until one arm is ready (a value, or its channel empty and
/// disconnected), takes its value and returns a [`SelectedOperation`],
/// from which [`SelectedOperation::recv`] hands the value out. When
/// several arms are ready, each select starts looking at a different one,
/// so that a channel that is always ready cannot starve the others.
///
/// ```
/// use preemptive_mlthreading_rust::{Duration, spawn, sync::channel::{self, Select}};
///
/// let (tx_n, rx_n) = channel::bounded::<u64>(1);
/// let (tx_s, rx_s) = channel::bounded::<String>(1);
/// let h = spawn(move || {
///     tx_n.send(7).unwrap();
///     tx_s.send("seven".to_owned()).unwrap();
/// })
/// .unwrap();
/// let (mut number, mut word) = (None, None);
/// while number.is_none() || word.is_none() {
///     let mut sel = Select::new();
///     let n = sel.recv(&rx_n);
///     let w = sel.recv(&rx_s);
///     let op = sel.select_timeout(Duration::from_secs(10)).expect("both are sent");
///     // A channel whose sender is gone is always ready, with an error.
///     match op.index() {
///         i if i == n => number = number.or(op.recv(&rx_n).ok()),
///         i if i == w => word = word.or(op.recv(&rx_s).ok()),
///         _ => unreachable!(),
///     }
/// }
/// assert_eq!((number, word.as_deref()), (Some(7), Some("seven")));
/// h.join().unwrap();
/// ```
pub struct Select<'a> {
    arms: Vec<Arm<'a>>,
}

/// An arm: its channel (to check [`SelectedOperation::recv`]'s argument)
/// and the typed arm behind the erased one.
struct Arm<'a> {
    chan: *const (),
    arm: Box<dyn SelectArm + 'a>,
}

impl Default for Select<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Select<'a> {
    /// A select with no arms yet.
    pub fn new() -> Self {
        Select { arms: Vec::new() }
    }

    /// Adds an arm receiving from `r`; returns its index.
    pub fn recv<T>(&mut self, r: &'a Receiver<T>) -> usize {
        self.arms.push(Arm { chan: Arc::as_ptr(&r.chan).cast(), arm: Box::new(RecvArm::new(&*r.chan)) });
        self.arms.len() - 1
    }

    /// Waits until an arm is ready.
    ///
    /// # Panics
    /// If the select has no arms.
    pub fn select(&mut self) -> SelectedOperation<'_, 'a> {
        match self.run(Wait::Until(None)) {
            Ok(op) => op,
            Err(_) => unreachable!("an unbounded select neither times out nor gives up"),
        }
    }

    /// Takes an arm that is ready now, if any.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::{WouldBlock, channel::{self, Select}};
    ///
    /// let (_tx, rx) = channel::unbounded::<u8>();
    /// let mut sel = Select::new();
    /// sel.recv(&rx);
    /// assert!(matches!(sel.try_select(), Err(WouldBlock)));
    /// ```
    pub fn try_select(&mut self) -> Result<SelectedOperation<'_, 'a>, WouldBlock> {
        self.run(Wait::Never).map_err(|_| WouldBlock)
    }

    /// Like [`select`](Self::select), giving up after `timeout`.
    pub fn select_timeout(&mut self, timeout: Duration) -> Result<SelectedOperation<'_, 'a>, TimedOut> {
        self.run(Wait::Until(deadline_after(timeout))).map_err(|_| TimedOut)
    }

    /// Like [`select`](Self::select), giving up at `deadline`.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{Duration, sync::{TimedOut, channel::{self, Select}}};
    /// use std::time::Instant;
    ///
    /// let (_tx, rx) = channel::bounded::<u8>(0);
    /// let mut sel = Select::new();
    /// sel.recv(&rx);
    /// assert!(matches!(sel.select_deadline(Instant::now() + Duration::from_millis(1)), Err(TimedOut)));
    /// ```
    pub fn select_deadline(&mut self, deadline: Instant) -> Result<SelectedOperation<'_, 'a>, TimedOut> {
        self.run(Wait::Until(Some(deadline))).map_err(|_| TimedOut)
    }

    fn run(&mut self, wait: Wait) -> Result<SelectedOperation<'_, 'a>, ()> {
        let dyns: Vec<&dyn SelectArm> = self.arms.iter().map(|a| &*a.arm).collect();
        let index = select_arms(&dyns, wait).map_err(|_| ())?;
        Ok(SelectedOperation { select: self, index, done: false })
    }
}

impl std::fmt::Debug for Select<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Select").field("arms", &self.arms.len()).finish()
    }
}

/// The arm a [`Select`] chose; its value (or the disconnection) is taken
/// with [`recv`](Self::recv). Dropping it without doing so panics, since
/// the value would be lost.
#[must_use = "the selected arm's value is taken with `recv`; dropping it loses the value"]
pub struct SelectedOperation<'s, 'a> {
    select: &'s mut Select<'a>,
    index: usize,
    done: bool,
}

impl SelectedOperation<'_, '_> {
    /// The index of the chosen arm, as [`Select::recv`] returned it.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The chosen arm's value, or [`RecvError`] if its channel is empty and
    /// disconnected.
    ///
    /// # Panics
    /// If `r` is not the receiver of the chosen arm.
    pub fn recv<T>(mut self, r: &Receiver<T>) -> Result<T, RecvError> {
        let arm = &mut self.select.arms[self.index];
        assert!(
            std::ptr::eq(arm.chan, Arc::as_ptr(&r.chan).cast()),
            "SelectedOperation::recv was given another receiver than the chosen arm's"
        );
        let typed = &mut *arm.arm as *mut dyn SelectArm as *mut RecvArm<'_, T>;
        // SAFETY: the arm was made by `Select::recv::<U>` for a channel
        // `Chan<U>` at the address `r`'s `Chan<T>` has: one channel, so
        // `U` is `T`; the select is over, so nobody else touches the slot.
        let value = unsafe { (*typed).slot.get_mut().take() };
        self.done = true;
        value.ok_or(RecvError)
    }
}

impl Drop for SelectedOperation<'_, '_> {
    fn drop(&mut self) {
        if !self.done && !std::thread::panicking() {
            panic!("a SelectedOperation was dropped without `recv`: the selected value would be lost");
        }
    }
}

impl std::fmt::Debug for SelectedOperation<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectedOperation").field("index", &self.index).finish()
    }
}

/// Waits on receivers of any value types and runs the arm of the one that
/// is ready (fairly, when several are): a [`Select`] written as a `match`,
/// in crossbeam's syntax for receive arms.
///
/// - `recv(r) -> pattern => body`: `pattern` binds `Result<T, RecvError>`
///   (an error once `r`'s channel is empty and disconnected);
/// - at most one last arm that bounds the wait: `default => body` (take
///   only what is ready now), `default(timeout) => body` or
///   `timeout(timeout) => body` (give up after a `Duration`), or
///   `deadline(instant) => body` (give up at an `Instant`).
///
/// Each receiver expression is evaluated once; bodies run in the caller's
/// frame, so `break`, `continue`, `return` and `?` work in them. Send arms
/// are not supported (see [`Select`]).
///
/// ```
/// use preemptive_mlthreading_rust::{select, spawn, Duration, sync::channel};
///
/// let (tx_n, rx_n) = channel::unbounded::<u32>();
/// let (tx_s, rx_s) = channel::unbounded::<&str>();
/// spawn(move || tx_s.send("hello").unwrap()).unwrap().join().unwrap();
/// let got = select! {
///     recv(rx_n) -> n => format!("number {n:?}"),
///     recv(rx_s) -> s => format!("text {}", s.unwrap()),
///     timeout(Duration::from_secs(5)) => "nothing".to_owned(),
/// };
/// assert_eq!(got, "text hello");
/// let idle = select! {
///     recv(rx_n) -> _ => false,
///     default => true,
/// };
/// assert!(idle);
/// drop(tx_n);
/// ```
#[macro_export]
macro_rules! select {
    (@arm $sel:ident; recv($r:expr) -> $p:pat => $body:block , $($rest:tt)*) => {
        $crate::select!(@recv $sel; $r; $p => $body; $($rest)*)
    };
    (@arm $sel:ident; recv($r:expr) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::select!(@recv $sel; $r; $p => $body; $($rest)*)
    };
    (@arm $sel:ident; recv($r:expr) -> $p:pat => $body:expr , $($rest:tt)*) => {
        $crate::select!(@recv $sel; $r; $p => $body; $($rest)*)
    };
    (@arm $sel:ident; recv($r:expr) -> $p:pat => $body:expr) => {
        $crate::select!(@recv $sel; $r; $p => $body;)
    };
    (@arm $sel:ident; default => $body:expr $(,)?) => {
        match $sel.try_select() {
            ::core::result::Result::Ok(op) => ::core::result::Result::Err(op),
            ::core::result::Result::Err(_) => ::core::result::Result::Ok($body),
        }
    };
    (@arm $sel:ident; default($t:expr) => $body:expr $(,)?) => {
        $crate::select!(@arm $sel; timeout($t) => $body)
    };
    (@arm $sel:ident; timeout($t:expr) => $body:expr $(,)?) => {
        match $sel.select_timeout($t) {
            ::core::result::Result::Ok(op) => ::core::result::Result::Err(op),
            ::core::result::Result::Err(_) => ::core::result::Result::Ok($body),
        }
    };
    (@arm $sel:ident; deadline($d:expr) => $body:expr $(,)?) => {
        match $sel.select_deadline($d) {
            ::core::result::Result::Ok(op) => ::core::result::Result::Err(op),
            ::core::result::Result::Err(_) => ::core::result::Result::Ok($body),
        }
    };
    (@arm $sel:ident;) => {
        ::core::result::Result::Err($sel.select())
    };
    // One receive arm: registered here, decided after the arms below it
    // have run the select (Ok: an arm below ran; Err: the operation, not
    // yet claimed by an arm).
    (@recv $sel:ident; $r:expr; $p:pat => $body:expr; $($rest:tt)*) => {{
        let receiver = &$r;
        let index = $sel.recv(receiver);
        match $crate::select!(@arm $sel; $($rest)*) {
            ::core::result::Result::Ok(value) => ::core::result::Result::Ok(value),
            ::core::result::Result::Err(op) if op.index() == index => {
                let $p = op.recv(receiver);
                ::core::result::Result::Ok($body)
            }
            ::core::result::Result::Err(op) => ::core::result::Result::Err(op),
        }
    }};
    ($($arms:tt)+) => {{
        let mut select = $crate::sync::channel::Select::new();
        let value;
        // An arm whose body diverges (`break`, `panic!`) makes its
        // `Ok(body)` unreachable: not the user's mistake.
        #[allow(unreachable_code)]
        {
            value = match $crate::select!(@arm select; $($arms)+) {
                ::core::result::Result::Ok(value) => value,
                ::core::result::Result::Err(_) => ::core::unreachable!("every arm index is matched"),
            };
        }
        value
    }};
}
