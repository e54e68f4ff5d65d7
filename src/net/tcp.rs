//! TCP shaped like `std::net`, on non-blocking sockets: a call that would
//! block waits for readiness ([`super::wait_readable`]), which parks a
//! green thread (its worker runs others) and blocks a plain OS thread.

use super::wait_writable;
use super::waits::{Waits, wait_settings};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::Duration;

fn bind_one(addr: &SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(*addr), Type::STREAM.cloexec(), Some(Protocol::TCP))?;
    // As std does: a restarted server can bind while old connections linger.
    socket.set_reuse_address(true)?;
    socket.bind(&SockAddr::from(*addr))?;
    let backlog = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(4096);
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// A TCP listening socket, as `std::net::TcpListener`, whose `accept`
/// parks a green thread instead of blocking its worker.
///
/// ```
/// use preemptive_mlthreading_rust::net::{TcpListener, TcpStream};
/// use preemptive_mlthreading_rust::spawn;
/// use std::io::{Read, Write};
///
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let server = spawn(move || {
///     let (mut s, _) = listener.accept().unwrap();
///     let mut buf = [0u8; 4];
///     s.read_exact(&mut buf).unwrap();
///     s.write_all(&buf).unwrap();
/// })
/// .unwrap();
/// let client = spawn(move || {
///     let mut c = TcpStream::connect(addr).unwrap();
///     c.write_all(b"ping").unwrap();
///     let mut buf = [0u8; 4];
///     c.read_exact(&mut buf).unwrap();
///     buf
/// })
/// .unwrap();
/// server.join().unwrap();
/// assert_eq!(&client.join().unwrap(), b"ping");
/// ```
pub struct TcpListener {
    waits: Waits,
    inner: std::net::TcpListener,
}

impl TcpListener {
    /// Binds to the first of `addr`'s addresses that works (std's rule),
    /// with the system's largest accept backlog (`net.core.somaxconn`, as
    /// Go does): std's 128 makes a burst of connections wait for SYN
    /// retransmissions, a second each.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match bind_one(&a) {
                Ok(l) => return TcpListener::from_std(l),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to bind to")))
    }

    /// Takes over a std listener (made non-blocking underneath).
    pub fn from_std(inner: std::net::TcpListener) -> io::Result<TcpListener> {
        inner.set_nonblocking(true)?;
        Ok(TcpListener { waits: Waits::default(), inner })
    }

    /// The std listener, in blocking mode again.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        let TcpListener { waits, inner } = self;
        drop(waits);
        inner.set_nonblocking(false)?;
        Ok(inner)
    }

    /// The next connection and its peer's address, waiting for one. An
    /// error (`EMFILE` when out of descriptors, a connection reset before
    /// it was accepted) ends this call only: the listener goes on.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (s, peer) = self.waits.read(self.inner.as_fd(), || self.inner.accept())?;
        Ok((TcpStream::from_std(s)?, peer))
    }

    /// Connections as they come (never ends; errors are items).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::from_fn(move || Some(self.accept().map(|(s, _)| s)))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener { waits: self.waits.copy()?, inner: self.inner.try_clone()? })
    }

    /// `accept` answers `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.waits.nonblocking.store(nonblocking, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener").field("addr", &self.inner.local_addr().ok()).finish()
    }
}

/// A TCP connection, as `std::net::TcpStream`, whose reads, writes and
/// connect park a green thread instead of blocking its worker. `Read`
/// and `Write` work on `&TcpStream` too, so one thread may read while
/// another writes.
pub struct TcpStream {
    waits: Waits,
    inner: std::net::TcpStream,
}

impl TcpStream {
    /// Connects to the first of `addr`'s addresses that accepts.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_inner(&a, None) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to connect to")))
    }

    /// Connects to `addr`, giving up after `timeout` (`TimedOut`).
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot set a 0 duration timeout"));
        }
        TcpStream::connect_inner(addr, Some(timeout))
    }

    fn connect_inner(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let socket = Socket::new(Domain::for_address(*addr), Type::STREAM.cloexec(), Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        match socket.connect(&SockAddr::from(*addr)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) || e.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(&socket, timeout)?;
                if let Some(err) = socket.take_error()? {
                    return Err(err);
                }
            }
            Err(e) => return Err(e),
        }
        TcpStream::from_std(socket.into())
    }

    /// Takes over a std stream (made non-blocking underneath; its std
    /// timeouts are not carried over: set them here).
    pub fn from_std(inner: std::net::TcpStream) -> io::Result<TcpStream> {
        inner.set_nonblocking(true)?;
        Ok(TcpStream { waits: Waits::default(), inner })
    }

    /// The std stream, in blocking mode again.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        let TcpStream { waits, inner } = self;
        drop(waits);
        inner.set_nonblocking(false)?;
        Ok(inner)
    }

    /// Another handle to the same connection (timeouts copied).
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream { waits: self.waits.copy()?, inner: self.inner.try_clone()? })
    }

    wait_settings!();

    /// Shuts down the read half, the write half or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// See [`set_nodelay`](Self::set_nodelay).
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.nodelay()
    }

    /// Reads without consuming, waiting for data as `read` does.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.waits.read(self.inner.as_fd(), || self.inner.peek(buf))
    }

    fn read_inner(&self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        self.waits.read_stream(self.inner.as_fd(), len, || (&self.inner).read(buf))
    }

    fn write_inner(&self, buf: &[u8]) -> io::Result<usize> {
        self.waits.write(self.inner.as_fd(), || (&self.inner).write(buf))
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.inner.local_addr().ok())
            .field("peer", &self.inner.peer_addr().ok())
            .finish()
    }
}

impl TryFrom<std::net::TcpStream> for TcpStream {
    type Error = io::Error;
    fn try_from(s: std::net::TcpStream) -> io::Result<TcpStream> {
        TcpStream::from_std(s)
    }
}

impl TryFrom<std::net::TcpListener> for TcpListener {
    type Error = io::Error;
    fn try_from(l: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::from_std(l)
    }
}

super::impls::fd_impls!(TcpListener);

super::impls::fd_impls!(TcpStream);
super::impls::stream_io!(TcpStream);
