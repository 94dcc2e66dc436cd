//! A TCP proxy in front of the test server that can break the connections going through it,
//! the way a network failure or a failover does: a cut connection is closed as soon as its
//! client sends anything, so the failure happens in the middle of a call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct CuttingProxy {
    port: u16,
    generation: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttingProxy {
    /// Forwards a loopback port to the server of `url`.
    pub async fn start(url: &str) -> Self {
        let config: tokio_postgres::Config = url.parse().unwrap();
        let host = match &config.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(host) => host.clone(),
            other => panic!("the test server must be reached by TCP, not {other:?}"),
        };
        let upstream = format!("{host}:{}", config.get_ports().first().copied().unwrap_or(5432));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (generation, accepted) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (current, count) = (Arc::clone(&generation), Arc::clone(&accepted));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let mine = current.load(Ordering::SeqCst);
                let (current, upstream) = (Arc::clone(&current), upstream.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else { return };
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let up = async {
                        let mut buffer = vec![0_u8; 16 * 1024];
                        loop {
                            let n = from_client.read(&mut buffer).await.unwrap_or(0);
                            if n == 0 || current.load(Ordering::SeqCst) != mine {
                                return;
                            }
                            if to_server.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down = tokio::io::copy(&mut from_server, &mut to_client);
                    tokio::select! {
                        () = up => {}
                        _ = down => {}
                    }
                    // Dropping both sockets closes them: the client sees its connection break.
                });
            }
        });
        Self { port, generation, accepted, task }
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (userinfo, rest) = match rest.split_once('@') {
            Some((userinfo, rest)) => (format!("{userinfo}@"), rest),
            None => (String::new(), rest),
        };
        let path = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
        format!("{scheme}://{userinfo}127.0.0.1:{}{path}", self.port)
    }

    /// Breaks every connection open now; later connections go through.
    pub fn cut_existing(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
