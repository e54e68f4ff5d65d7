use crate::runtime::task::TaskRef;
use crate::runtime::thread_id::ThreadId;
use crate::runtime::worker::Worker;
use std::fmt;
use std::sync::Arc;

/// A handle to a thread: a green thread, or a plain OS thread that called
/// [`current`].
///
/// Like `std::thread::Thread` it is `Clone + Send + Sync`, and its main use
/// is [`unpark`](Thread::unpark).
#[derive(Clone)]
pub struct Thread(Repr);

#[derive(Clone)]
enum Repr {
    Green(TaskRef),
    Os(Arc<OsThread>),
}

struct OsThread {
    id: ThreadId,
    std: std::thread::Thread,
}

impl Thread {
    pub(crate) fn green(task: TaskRef) -> Self {
        Thread(Repr::Green(task))
    }

    /// This thread's id.
    pub fn id(&self) -> ThreadId {
        match &self.0 {
            Repr::Green(t) => t.id,
            Repr::Os(t) => t.id,
        }
    }

    /// The name given at spawn (for OS threads, the std thread's name).
    pub fn name(&self) -> Option<&str> {
        match &self.0 {
            Repr::Green(t) => t.spec.name(),
            Repr::Os(t) => t.std.name(),
        }
    }

    /// Whether this is a green thread.
    pub fn is_green(&self) -> bool {
        matches!(self.0, Repr::Green(_))
    }

    /// Whether this is the calling green thread (an OS thread's handle is
    /// never asked: only green threads are joined).
    pub(crate) fn is_current(&self) -> bool {
        match &self.0 {
            Repr::Green(t) => Worker::current_task_ptr() == Some(TaskRef::as_ptr(t)),
            Repr::Os(_) => false,
        }
    }

    /// Makes a [`park`](crate::park)ed thread runnable, or, if it is not
    /// parked, makes its next `park` return at once.
    pub fn unpark(&self) {
        self.unpark_by(Worker::schedule)
    }

    /// [`unpark`](Self::unpark) for a thread whose descriptor became ready
    /// (`net`): see `Wake::Io`.
    pub(crate) fn unpark_io(&self) {
        self.unpark_by(Worker::schedule_io)
    }

    /// [`unpark`](Self::unpark) from a thread that finished, for the thread
    /// joining it: on a work-stealing scheduler the joiner queues behind
    /// the threads already waiting rather than in the wake slot, so a
    /// spawner joining many children runs once they are done, not between
    /// each two.
    pub(crate) fn unpark_joiner(&self) {
        self.unpark_by(Worker::schedule_joiner)
    }

    #[inline(always)]
    fn unpark_by(&self, schedule: fn(TaskRef)) {
        match &self.0 {
            Repr::Green(t) => {
                if t.park.unpark() {
                    schedule(t.clone());
                }
            }
            Repr::Os(t) => t.std.unpark(),
        }
    }
}

impl fmt::Debug for Thread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Thread")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("green", &self.is_green())
            .finish()
    }
}

/// The calling thread: the running green thread, or else the OS thread.
///
/// ```
/// use preemptive_mlthreading_rust::{current, ThreadBuilder};
///
/// let h = ThreadBuilder::new().name("worker").spawn(|| current().name().map(str::to_owned)).unwrap();
/// assert_eq!(h.join().unwrap().as_deref(), Some("worker"));
/// assert!(!current().is_green());
/// ```
pub fn current() -> Thread {
    if let Some(task) = Worker::current_task_arc() {
        return Thread::green(task);
    }
    thread_local! {
        static OS: Arc<OsThread> = Arc::new(OsThread { id: ThreadId::next(), std: std::thread::current() });
    }
    Thread(Repr::Os(OS.with(Arc::clone)))
}
