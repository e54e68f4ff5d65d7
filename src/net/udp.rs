//! UDP shaped like `std::net::UdpSocket`, on a non-blocking socket: a
//! send or receive that would block waits for readiness.

use super::waits::{Waits, wait_settings};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;

/// A UDP socket, as `std::net::UdpSocket`, whose receives (and sends,
/// when the buffer is full) park a green thread instead of blocking its
/// worker.
///
/// ```
/// use preemptive_mlthreading_rust::net::UdpSocket;
/// use preemptive_mlthreading_rust::spawn;
///
/// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
/// let rx = spawn(move || {
///     let mut buf = [0u8; 16];
///     let (n, from) = b.recv_from(&mut buf).unwrap();
///     (buf[..n].to_vec(), from)
/// })
/// .unwrap();
/// a.send_to(b"datagram", b_addr).unwrap();
/// assert_eq!(rx.join().unwrap(), (b"datagram".to_vec(), a_addr));
/// ```
pub struct UdpSocket {
    waits: Waits,
    inner: std::net::UdpSocket,
}

impl UdpSocket {
    /// Binds to the first of `addr`'s addresses that works.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        UdpSocket::from_std(std::net::UdpSocket::bind(addr)?)
    }

    /// Takes over a std socket (made non-blocking underneath).
    pub fn from_std(inner: std::net::UdpSocket) -> io::Result<UdpSocket> {
        inner.set_nonblocking(true)?;
        Ok(UdpSocket { waits: Waits::default(), inner })
    }

    /// The std socket, in blocking mode again.
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        let UdpSocket { waits, inner } = self;
        drop(waits);
        inner.set_nonblocking(false)?;
        Ok(inner)
    }

    fn recv_op<T>(&self, op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        self.waits.read(self.inner.as_fd(), op)
    }

    fn send_op<T>(&self, op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
        self.waits.write(self.inner.as_fd(), op)
    }

    /// Receives a datagram and its sender, waiting for one.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_op(|| self.inner.recv_from(buf))
    }

    /// Receives without consuming, waiting for a datagram.
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.recv_op(|| self.inner.peek_from(buf))
    }

    /// Sends a datagram to `addr`.
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to"))?;
        self.send_op(|| self.inner.send_to(buf, addr))
    }

    /// Sets the peer for `send` and `recv`.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        self.inner.connect(addr)
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.send_op(|| self.inner.send(buf))
    }

    /// Receives from the connected peer, waiting for a datagram.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_op(|| self.inner.recv(buf))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    wait_settings!();

    /// `SO_BROADCAST`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.inner.set_broadcast(on)
    }

    /// Another handle to the same socket (timeouts copied).
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        let inner = self.inner.try_clone()?;
        inner.set_nonblocking(true)?;
        Ok(UdpSocket { waits: self.waits.copy()?, inner })
    }
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket").field("addr", &self.inner.local_addr().ok()).finish()
    }
}

impl TryFrom<std::net::UdpSocket> for UdpSocket {
    type Error = io::Error;
    fn try_from(s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        UdpSocket::from_std(s)
    }
}

super::impls::fd_impls!(UdpSocket);
