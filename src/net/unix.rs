//! Unix-domain stream sockets shaped like `std::os::unix::net`, on
//! non-blocking sockets: a call that would block waits for readiness.

use super::waits::{Waits, wait_settings};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::SocketAddr;
use std::path::Path;

/// A Unix-domain listening socket, as `std::os::unix::net::UnixListener`,
/// whose `accept` parks a green thread instead of blocking its worker.
///
/// ```
/// use preemptive_mlthreading_rust::net::{UnixListener, UnixStream};
/// use preemptive_mlthreading_rust::spawn;
/// use std::io::{Read, Write};
///
/// let path = std::env::temp_dir().join(format!("pmt-doc-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let listener = UnixListener::bind(&path).unwrap();
/// let p = path.clone();
/// let client = spawn(move || {
///     let mut c = UnixStream::connect(&p).unwrap();
///     c.write_all(b"hi").unwrap();
/// })
/// .unwrap();
/// let (mut s, _) = listener.accept().unwrap();
/// let mut buf = [0u8; 2];
/// s.read_exact(&mut buf).unwrap();
/// client.join().unwrap();
/// assert_eq!(&buf, b"hi");
/// std::fs::remove_file(&path).unwrap();
/// ```
pub struct UnixListener {
    waits: Waits,
    inner: std::os::unix::net::UnixListener,
}

impl UnixListener {
    /// Binds to `path` (which must not exist).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        UnixListener::from_std(std::os::unix::net::UnixListener::bind(path)?)
    }

    /// Takes over a std listener (made non-blocking underneath).
    pub fn from_std(inner: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        inner.set_nonblocking(true)?;
        Ok(UnixListener { waits: Waits::default(), inner })
    }

    /// The std listener, in blocking mode again.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        let UnixListener { waits, inner } = self;
        drop(waits);
        inner.set_nonblocking(false)?;
        Ok(inner)
    }

    /// The next connection and its peer's address, waiting for one.
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (s, peer) = self.waits.read(self.inner.as_fd(), || self.inner.accept())?;
        Ok((UnixStream::from_std(s)?, peer))
    }

    /// Connections as they come (never ends; errors are items).
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<UnixStream>> + '_ {
        std::iter::from_fn(move || Some(self.accept().map(|(s, _)| s)))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// `accept` answers `WouldBlock` instead of waiting.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.waits.nonblocking.store(nonblocking, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

impl std::fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixListener").field("addr", &self.inner.local_addr().ok()).finish()
    }
}

/// A Unix-domain stream, as `std::os::unix::net::UnixStream`, whose
/// reads and writes park a green thread instead of blocking its worker.
pub struct UnixStream {
    waits: Waits,
    inner: std::os::unix::net::UnixStream,
}

impl UnixStream {
    /// Connects to the socket at `path` (a Unix-domain connect does not
    /// wait for the peer's accept, only for room in its backlog).
    pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        UnixStream::from_std(std::os::unix::net::UnixStream::connect(path)?)
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Takes over a std stream (made non-blocking underneath).
    pub fn from_std(inner: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        inner.set_nonblocking(true)?;
        Ok(UnixStream { waits: Waits::default(), inner })
    }

    /// The std stream, in blocking mode again.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        let UnixStream { waits, inner } = self;
        drop(waits);
        inner.set_nonblocking(false)?;
        Ok(inner)
    }

    wait_settings!();

    /// Shuts down the read half, the write half or both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// Another handle to the same connection (timeouts copied).
    pub fn try_clone(&self) -> io::Result<UnixStream> {
        let inner = self.inner.try_clone()?;
        inner.set_nonblocking(true)?;
        Ok(UnixStream { waits: self.waits.copy()?, inner })
    }

    fn read_inner(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.waits.read(self.inner.as_fd(), || (&self.inner).read(buf))
    }

    fn write_inner(&self, buf: &[u8]) -> io::Result<usize> {
        self.waits.write(self.inner.as_fd(), || (&self.inner).write(buf))
    }
}

impl std::fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixStream").field("peer", &self.inner.peer_addr().ok()).finish()
    }
}

super::impls::fd_impls!(UnixListener);

super::impls::fd_impls!(UnixStream);
super::impls::stream_io!(UnixStream);
