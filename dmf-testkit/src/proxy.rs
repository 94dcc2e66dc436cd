//! A loopback TCP proxy in front of a real database server, driven by the test: it forwards
//! bytes both ways until told to misbehave the way networks and servers do in production.
//!
//! - [`TcpProxy::drop_answer_after`]: once the client has sent a given byte sequence (say the
//!   `COMMIT` of a batch), the next bytes the server sends back on that connection are dropped
//!   and the connection is cut: the server committed, the client never hears of it (a lost
//!   COMMIT acknowledgement).
//! - [`TcpProxy::freeze`]: nothing more is forwarded on any connection, new ones included (they
//!   are accepted and then hear nothing): a server that stopped answering. [`TcpProxy::thaw`]
//!   lets traffic through again.
//!
//! Every fault is an event the test can await ([`TcpProxy::dropped_answers`],
//! [`TcpProxy::stalled_reads`]), never a timing guess.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let proxy = dmf_testkit::TcpProxy::start("127.0.0.1:5432").await?;
//! let url = format!("postgres://postgres@{}/postgres", proxy.address());
//! proxy.drop_answer_after(b"\"checkpoints\"", b"COMMIT\0");
//! # let _ = url; Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A one-shot trigger: after the client sent `first` and then `then`, drop the server's answer
/// (or freeze the proxy).
#[derive(Debug, Clone)]
struct Trigger {
    first: Vec<u8>,
    then: Vec<u8>,
    action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    DropAnswer,
    Freeze,
}

#[derive(Default)]
struct State {
    armed: Option<Trigger>,
}

/// A loopback TCP proxy to one upstream address, driven by the test: it forwards bytes both
/// ways until told to drop an answer ([`drop_answer_after`](Self::drop_answer_after)) or to
/// stop forwarding ([`freeze`](Self::freeze), [`freeze_after`](Self::freeze_after)), and
/// reports each fault as an event to await.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// let proxy = dmf_testkit::TcpProxy::start("127.0.0.1:5432").await?;
/// let url = format!("postgres://postgres@{}/postgres", proxy.address());
/// // The server commits the first batch; the client never hears of it.
/// proxy.drop_answer_after(b"\"checkpoints\"", b"COMMIT\0");
/// # let _ = url; Ok(()) }
/// ```
pub struct TcpProxy {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    frozen: watch::Sender<bool>,
    dropped: watch::Sender<u64>,
    stalled: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: &str) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let (frozen, _) = watch::channel(false);
        let (dropped, _) = watch::channel(0u64);
        let (stalled, _) = watch::channel(0u64);
        let upstream = upstream.to_owned();
        let accept = tokio::spawn({
            let (state, frozen, dropped, stalled) = (state.clone(), frozen.clone(), dropped.clone(), stalled.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let link = Link {
                        state: state.clone(),
                        frozen: frozen.clone(),
                        dropped: dropped.clone(),
                        stalled: stalled.clone(),
                    };
                    tokio::spawn(link.serve(client, upstream.clone()));
                }
            }
        });
        Ok(TcpProxy { address, state, frozen, dropped, stalled, accept })
    }

    /// The address clients connect to instead of the server's.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Once: on the first connection whose client sends `first` and, after it, `then`, the
    /// server's next answer is dropped and the connection cut in both directions.
    pub fn drop_answer_after(&self, first: &[u8], then: &[u8]) {
        self.lock().armed = Some(Trigger { first: first.to_vec(), then: then.to_vec(), action: Action::DropAnswer });
    }

    /// Once: on the first connection whose client sends `first` and, after it, `then`, those
    /// bytes still reach the server, and then the proxy [freezes](Self::freeze): the server's
    /// answer, and everything after it on any connection, is held back until
    /// [`thaw`](Self::thaw).
    pub fn freeze_after(&self, first: &[u8], then: &[u8]) {
        self.lock().armed = Some(Trigger { first: first.to_vec(), then: then.to_vec(), action: Action::Freeze });
    }

    /// Stops forwarding anything, on every connection, until [`thaw`](Self::thaw).
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Forwards again what [`freeze`](Self::freeze) held back.
    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    /// Waits until `n` answers have been dropped in all.
    pub async fn dropped_answers(&self, n: u64) {
        let mut seen = self.dropped.subscribe();
        let _ = seen.wait_for(|count| *count >= n).await;
    }

    /// Answers dropped so far.
    pub fn answers_dropped(&self) -> u64 {
        *self.dropped.borrow()
    }

    /// Waits until `n` reads have been held back by a freeze in all (a client or server sent
    /// something that was not forwarded).
    pub async fn stalled_reads(&self, n: u64) {
        let mut seen = self.stalled.subscribe();
        let _ = seen.wait_for(|count| *count >= n).await;
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[derive(Clone)]
struct Link {
    state: Arc<Mutex<State>>,
    frozen: watch::Sender<bool>,
    dropped: watch::Sender<u64>,
    stalled: watch::Sender<u64>,
}

impl Link {
    async fn serve(self, client: TcpStream, upstream: String) {
        if self.wait_thawed().await.is_err() {
            return;
        }
        let Ok(server) = TcpStream::connect(&upstream).await else { return };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        // Set by the client-to-server pump when the trigger fired on this connection.
        let (cut, cut_seen) = watch::channel(false);
        let upward = tokio::spawn(self.clone().client_to_server(client_read, server_write, cut));
        self.server_to_client(server_read, client_write, cut_seen).await;
        upward.abort();
    }

    /// Waits while frozen (counting the stall once); `Err` when the proxy is gone.
    async fn wait_thawed(&self) -> Result<(), ()> {
        let mut frozen = self.frozen.subscribe();
        if *frozen.borrow_and_update() {
            self.stalled.send_modify(|n| *n += 1);
        }
        frozen.wait_for(|frozen| !*frozen).await.map(|_| ()).map_err(|_| ())
    }

    async fn client_to_server(self, mut from: OwnedReadHalf, mut to: OwnedWriteHalf, cut: watch::Sender<bool>) {
        let mut buffer = vec![0u8; 64 * 1024];
        // The tail of what was sent, so that a pattern split across reads is still found.
        let mut seen: Vec<u8> = Vec::new();
        let mut first_seen = false;
        loop {
            let Ok(n) = from.read(&mut buffer).await else { return };
            if n == 0 || self.wait_thawed().await.is_err() {
                return;
            }
            let fired = {
                let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                match state.armed.clone() {
                    Some(trigger) => {
                        seen.extend_from_slice(&buffer[..n]);
                        if !first_seen {
                            if let Some(at) = find(&seen, &trigger.first) {
                                first_seen = true;
                                seen.drain(..at + trigger.first.len());
                            }
                        }
                        let fired = first_seen && find(&seen, &trigger.then).is_some();
                        if fired {
                            state.armed = None;
                        }
                        let keep = trigger.first.len().max(trigger.then.len());
                        if seen.len() > keep {
                            seen.drain(..seen.len() - keep);
                        }
                        fired.then_some(trigger.action)
                    }
                    None => None,
                }
            };
            match fired {
                Some(Action::DropAnswer) => {
                    cut.send_replace(true);
                }
                Some(Action::Freeze) => {
                    self.frozen.send_replace(true);
                }
                None => {}
            }
            if to.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    }

    async fn server_to_client(&self, mut from: OwnedReadHalf, mut to: OwnedWriteHalf, cut: watch::Receiver<bool>) {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let Ok(n) = from.read(&mut buffer).await else { return };
            if n == 0 || self.wait_thawed().await.is_err() {
                return;
            }
            if *cut.borrow() {
                // The server answered what the trigger sent: drop it and cut the connection.
                self.dropped.send_modify(|count| *count += 1);
                let _ = to.shutdown().await;
                return;
            }
            if to.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that answers every read with "ok:" + what it read.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 || socket.write_all(&[b"ok:", &buffer[..n]].concat()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    }

    async fn ask(stream: &mut TcpStream, message: &[u8]) -> Option<Vec<u8>> {
        stream.write_all(message).await.ok()?;
        let mut buffer = [0u8; 1024];
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(buffer[..n].to_vec()),
        }
    }

    #[tokio::test]
    async fn forwards_then_drops_the_answer_to_the_trigger_and_cuts_the_connection() {
        let proxy = TcpProxy::start(&echo().await.to_string()).await.expect("proxy");
        let mut client = TcpStream::connect(proxy.address()).await.expect("connect");
        assert_eq!(ask(&mut client, b"BEGIN").await.as_deref(), Some(&b"ok:BEGIN"[..]));
        proxy.drop_answer_after(b"checkpoint", b"COMMIT");
        assert_eq!(ask(&mut client, b"COMMIT").await.as_deref(), Some(&b"ok:COMMIT"[..]), "no checkpoint yet");
        assert_eq!(ask(&mut client, b"write checkpoint").await.as_deref(), Some(&b"ok:write checkpoint"[..]));
        assert_eq!(ask(&mut client, b"COMMIT").await, None, "the answer is dropped and the connection cut");
        assert_eq!(proxy.answers_dropped(), 1);
        // One-shot: a new connection works.
        let mut again = TcpStream::connect(proxy.address()).await.expect("connect");
        assert_eq!(ask(&mut again, b"checkpoint COMMIT").await.as_deref(), Some(&b"ok:checkpoint COMMIT"[..]));
    }

    #[tokio::test]
    async fn a_frozen_proxy_forwards_nothing_until_thawed() {
        let proxy = TcpProxy::start(&echo().await.to_string()).await.expect("proxy");
        let mut client = TcpStream::connect(proxy.address()).await.expect("connect");
        assert_eq!(ask(&mut client, b"a").await.as_deref(), Some(&b"ok:a"[..]));
        proxy.freeze();
        client.write_all(b"b").await.expect("write");
        proxy.stalled_reads(1).await;
        proxy.thaw();
        let mut buffer = [0u8; 16];
        let n = client.read(&mut buffer).await.expect("read");
        assert_eq!(&buffer[..n], b"ok:b", "held back, then forwarded");
    }
}
