//! A tiny HTTP/1.1 server for pitstop's socket hand-off mode, using only the standard library.
//!
//! * Listener: fd 3 when `LISTEN_FDS`/`LISTEN_PID` say pitstop passed one (systemd socket
//!   activation), else it binds 127.0.0.1:$PORT (default 8080) itself.
//! * Readiness: `READY=1` to `$NOTIFY_SOCKET` once it accepts.
//! * Stop: on SIGTERM it stops accepting, finishes the request in hand and exits. The
//!   listening socket is shared with the next version, so it must only be closed, never
//!   shut down (`shutdown` would stop it listening for every process that holds it).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Change this and save: pitstop rebuilds while v1 keeps answering, then swaps.
const VERSION: &str = "v1";

static STOPPING: AtomicBool = AtomicBool::new(false);

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

const POLLIN: i16 = 0x1;
const SIGTERM: i32 = 15;
const SIGINT: i32 = 2;

#[repr(C)]
struct TimeVal {
    tv_sec: i64,
    tv_usec: i64,
}

#[cfg(target_os = "linux")]
const SOCKET_LEVEL: (i32, i32) = (1, 20); // SOL_SOCKET, SO_RCVTIMEO
#[cfg(target_os = "macos")]
const SOCKET_LEVEL: (i32, i32) = (0xffff, 0x1006);

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn poll(fds: *mut PollFd, nfds: u64, timeout: i32) -> i32;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const TimeVal, len: u32) -> i32;
}

extern "C" fn on_stop(_signum: i32) {
    // Only an atomic store: anything else is not async-signal-safe.
    STOPPING.store(true, Ordering::SeqCst);
}

fn listener() -> std::io::Result<TcpListener> {
    let pid_matches = std::env::var("LISTEN_PID").ok() == Some(std::process::id().to_string());
    let fds: usize = std::env::var("LISTEN_FDS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    if pid_matches && fds >= 1 {
        // SAFETY: pitstop passed a listening TCP socket as fd 3 (SD_LISTEN_FDS_START).
        Ok(unsafe { TcpListener::from_raw_fd(3) })
    } else {
        // Run by hand, or by a supervisor that sets $PORT (pitstop's proxy mode).
        let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_string());
        TcpListener::bind(format!("127.0.0.1:{port}"))
    }
}

fn notify_ready() {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else { return };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else { return };
    let message = format!("READY=1\nSTATUS=serving {VERSION}");
    let sent = if let Some(name) = path.strip_prefix('@') {
        send_abstract(&sock, name, message.as_bytes())
    } else {
        sock.send_to(message.as_bytes(), &path).map(|_| ())
    };
    if let Err(err) = sent {
        eprintln!("rust-service: cannot notify {path}: {err}");
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(
    sock: &std::os::unix::net::UnixDatagram,
    name: &str,
    message: &[u8],
) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    sock.send_to_addr(message, &addr).map(|_| ())
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(
    _sock: &std::os::unix::net::UnixDatagram,
    _name: &str,
    _message: &[u8],
) -> std::io::Result<()> {
    Err(std::io::Error::new(ErrorKind::Unsupported, "abstract sockets are Linux-only"))
}

fn handle(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        // SIGTERM interrupts a read that has a timeout (SO_RCVTIMEO reads are never
        // restarted): carry on, the request in hand is still answered.
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        request.extend_from_slice(&buf[..n]);
    }
    let body = format!("hello from rust-service {VERSION}\n");
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())
}

/// Bound a blocking accept() to 100 ms, so that SIGTERM is noticed even when no connection
/// comes: pitstop steers new connections to the newest version, and an old version waiting
/// in accept() would otherwise block until its stop timeout. (When instances share one
/// socket, all of them wake for one connection and only one gets it, for the same effect.)
fn bound_accept_wait(listener: &TcpListener) {
    let timeout = TimeVal { tv_sec: 0, tv_usec: 100_000 };
    let size = std::mem::size_of::<TimeVal>() as u32;
    // SAFETY: a valid socket and a timeval that lives for the call.
    let (level, name) = SOCKET_LEVEL;
    unsafe { setsockopt(listener.as_raw_fd(), level, name, &timeout, size) };
}

/// Wait until the listener is readable, a signal arrives, or 100 ms pass.
fn readable(listener: &TcpListener) -> bool {
    let mut fds = PollFd { fd: listener.as_raw_fd(), events: POLLIN, revents: 0 };
    // SAFETY: one valid pollfd; poll returns early with EINTR when SIGTERM arrives.
    unsafe { poll(&mut fds, 1, 100) > 0 }
}

fn main() {
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        signal(SIGTERM, on_stop);
        signal(SIGINT, on_stop);
    }
    let listener = match listener() {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("rust-service: cannot listen: {err}");
            std::process::exit(1);
        }
    };
    bound_accept_wait(&listener);
    match listener.local_addr() {
        Ok(addr) => eprintln!("rust-service {VERSION} listening on {addr}"),
        Err(_) => eprintln!("rust-service {VERSION} listening"),
    }
    notify_ready();
    while !STOPPING.load(Ordering::SeqCst) {
        if !readable(&listener) {
            continue;
        }
        // Another instance sharing the socket may have taken the connection first.
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(err) = handle(stream) {
                    eprintln!("rust-service: {err}");
                }
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock || err.kind() == ErrorKind::Interrupted => {}
            Err(err) => eprintln!("rust-service: accept: {err}"),
        }
    }
    eprintln!("rust-service {VERSION} stopping");
}
