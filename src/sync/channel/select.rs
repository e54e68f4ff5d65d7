//! [`Select`]: one wait over sends and receives on channels of different
//! value types, with non-waiting, timed and deadline forms, fair among
//! ready arms; and the [`select!`](crate::select!) macro over it.

use super::chan::{ChanArm, SelectArm, select_arms};
use super::{Receiver, RecvError, SendError, Sender, Wait};
use crate::sync::error::{TimedOut, WouldBlock, deadline_after};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A select over sends and receives on channels of any value types, built
/// one arm at a time.
///
/// Each [`recv`](Self::recv) or [`send`](Self::send) adds an arm and
/// returns its index; a select waits until one arm can complete (a value
/// to receive, room or a receiver for the value to send, or its channel
/// disconnected), completes exactly that one and returns a
/// [`SelectedOperation`], whose [`recv`](SelectedOperation::recv) or
/// [`send`](SelectedOperation::send) gives the arm's result. When several
/// arms are ready, each select starts looking at a different one, so that
/// a channel that is always ready cannot starve the others.
///
/// A send arm's value is given when the arm is added; if another arm
/// completes, it is dropped with the `Select` (as crossbeam never
/// evaluates it). Two selects meet on a rendezvous channel as a plain
/// sender and receiver would.
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

/// An arm: its channel and side (to check the argument of
/// [`SelectedOperation::recv`] or [`send`](SelectedOperation::send)) and
/// the typed arm behind the erased one.
struct Arm<'a> {
    chan: *const (),
    send: bool,
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
        self.arms.push(Arm { chan: Arc::as_ptr(&r.chan).cast(), send: false, arm: Box::new(ChanArm::recv(&*r.chan)) });
        self.arms.len() - 1
    }

    /// Adds an arm sending `value` on `s`; returns its index.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::sync::channel::{self, Select};
    ///
    /// let (tx, rx) = channel::bounded::<u8>(1);
    /// let (_keep, idle) = channel::unbounded::<String>();
    /// let mut sel = Select::new();
    /// let s = sel.send(&tx, 3);
    /// sel.recv(&idle);
    /// let op = sel.select();
    /// assert_eq!(op.index(), s);
    /// assert_eq!(op.send(&tx), Ok(()));
    /// assert_eq!(rx.recv(), Ok(3));
    /// ```
    pub fn send<T>(&mut self, s: &'a Sender<T>, value: T) -> usize {
        let arm = Box::new(ChanArm::send(&*s.chan, value));
        self.arms.push(Arm { chan: Arc::as_ptr(&s.chan).cast(), send: true, arm });
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
        // A send arm gives its value once: selecting again would offer
        // nothing (and hand a receiver an empty slot).
        assert!(
            self.arms.iter().all(|a| !a.arm.spent()),
            "a Select whose send arm has completed cannot select again; build a new one"
        );
        if self.arms.is_empty() {
            // Only a bounding arm (`select! { default => .. }`): nothing
            // can complete, so give up now or at the deadline.
            match wait {
                Wait::Never => return Err(()),
                Wait::Until(Some(deadline)) => {
                    crate::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                    return Err(());
                }
                Wait::Until(None) => panic!("a select with no arms would wait for ever"),
            }
        }
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

/// The arm a [`Select`] completed; its result is taken with
/// [`recv`](Self::recv) or [`send`](Self::send). Dropping it without doing
/// so panics, since a received value would be lost.
#[must_use = "the selected arm's result is taken with `recv` or `send`; dropping it loses a received value"]
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

    /// The chosen receive arm's value, or [`RecvError`] if its channel is
    /// empty and disconnected.
    ///
    /// # Panics
    /// If the chosen arm is not a receive from `r`.
    pub fn recv<T>(mut self, r: &Receiver<T>) -> Result<T, RecvError> {
        // SAFETY: `r`'s channel is a `Chan<T>`.
        let value = unsafe { self.take::<T>(Arc::as_ptr(&r.chan).cast(), false) };
        value.ok_or(RecvError)
    }

    /// The chosen send arm's result: `Ok` once its value was sent, or the
    /// value back in [`SendError`] if every receiver is gone.
    ///
    /// # Panics
    /// If the chosen arm is not a send on `s`.
    pub fn send<T>(mut self, s: &Sender<T>) -> Result<(), SendError<T>> {
        // SAFETY: `s`'s channel is a `Chan<T>`.
        match unsafe { self.take::<T>(Arc::as_ptr(&s.chan).cast(), true) } {
            None => Ok(()),
            Some(value) => Err(SendError(value)),
        }
    }

    /// Takes the chosen arm's slot, after checking that the arm is on the
    /// channel at `chan` and on side `send`.
    ///
    /// # Safety
    /// `chan` is the address of a `Chan<T>`.
    unsafe fn take<T>(&mut self, chan: *const (), send: bool) -> Option<T> {
        let arm = &mut self.select.arms[self.index];
        assert!(
            std::ptr::eq(arm.chan, chan) && arm.send == send,
            "SelectedOperation::{} was given another channel than the chosen arm's",
            if send { "send" } else { "recv" }
        );
        let typed = &mut *arm.arm as *mut dyn SelectArm as *mut ChanArm<'_, T>;
        self.done = true;
        // SAFETY: the arm was made by `Select::recv::<U>` or `send::<U>`
        // for a `Chan<U>` at `chan`, which holds a `Chan<T>` (our
        // contract): one channel, so `U` is `T`. The select is over, so
        // nobody else touches the slot.
        unsafe { (*typed).slot.get_mut().take() }
    }
}

impl Drop for SelectedOperation<'_, '_> {
    fn drop(&mut self) {
        if !self.done && !std::thread::panicking() {
            panic!("a SelectedOperation was dropped without `recv` or `send`: its result would be lost");
        }
    }
}

impl std::fmt::Debug for SelectedOperation<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelectedOperation").field("index", &self.index).finish()
    }
}

/// Waits on sends and receives on channels of any value types and runs the
/// arm of the one that completes (chosen fairly when several are ready): a
/// [`Select`] written as a `match`, in crossbeam's syntax.
///
/// - `recv(r) -> pattern => body`: `pattern` binds `Result<T, RecvError>`
///   (an error once `r`'s channel is empty and disconnected);
/// - `send(s, value) -> pattern => body`: `pattern` binds
///   `Result<(), SendError<T>>` (the value back once every receiver is
///   gone); `value` is evaluated when the select starts, and dropped if
///   another arm completes;
/// - at most one last arm that bounds the wait: `default => body` (take
///   only what is ready now), `default(timeout) => body` or
///   `timeout(timeout) => body` (give up after a `Duration`), or
///   `deadline(instant) => body` (give up at an `Instant`).
///
/// Each channel expression is evaluated once; bodies run in the caller's
/// frame, so `break`, `continue`, `return` and `?` work in them.
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
/// // A send arm beside a receive arm that never completes (`rx_s` is
/// // disconnected, so it would always be ready): the buffer has room.
/// let (_keep, idle) = channel::unbounded::<u8>();
/// let sent = select! {
///     send(tx_n, 5) -> res => res.is_ok(),
///     recv(idle) -> _ => false,
/// };
/// assert!(sent && rx_n.recv() == Ok(5));
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
    (@arm $sel:ident; send($s:expr, $v:expr) -> $p:pat => $body:block , $($rest:tt)*) => {
        $crate::select!(@send $sel; $s; $v; $p => $body; $($rest)*)
    };
    (@arm $sel:ident; send($s:expr, $v:expr) -> $p:pat => $body:block $($rest:tt)*) => {
        $crate::select!(@send $sel; $s; $v; $p => $body; $($rest)*)
    };
    (@arm $sel:ident; send($s:expr, $v:expr) -> $p:pat => $body:expr , $($rest:tt)*) => {
        $crate::select!(@send $sel; $s; $v; $p => $body; $($rest)*)
    };
    (@arm $sel:ident; send($s:expr, $v:expr) -> $p:pat => $body:expr) => {
        $crate::select!(@send $sel; $s; $v; $p => $body;)
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
    // One send arm, as a receive arm.
    (@send $sel:ident; $s:expr; $v:expr; $p:pat => $body:expr; $($rest:tt)*) => {{
        let sender = &$s;
        let index = $sel.send(sender, $v);
        match $crate::select!(@arm $sel; $($rest)*) {
            ::core::result::Result::Ok(value) => ::core::result::Result::Ok(value),
            ::core::result::Result::Err(op) if op.index() == index => {
                let $p = op.send(sender);
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
