//! Faults between Klaxon and its backends: a proxy in front of the Docker socket or
//! PostgreSQL's port that can be cut (every connection dropped, new ones refused)
//! and restored, as the engine or the database stopping and coming back looks from
//! Klaxon's side. The real backends keep running for the other tests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::task::JoinHandle;

enum Upstream {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

enum Front {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

/// A cuttable proxy. Dropping it stops it.
pub struct Cuttable {
    upstream: Arc<Upstream>,
    front: Front,
    /// The accept loop and every connection: aborted by [`Cuttable::cut`].
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

async fn pipe<A, B>(mut a: A, mut b: B)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
}

impl Cuttable {
    /// `unix:///path/docker.sock` in front of the test engine's socket.
    pub async fn docker(real_host: &str, dir: &Path) -> Cuttable {
        let real = PathBuf::from(real_host.trim_start_matches("unix://"));
        let front = dir.join("docker.sock");
        let c = Cuttable {
            upstream: Arc::new(Upstream::Unix(real)),
            front: Front::Unix(front),
            tasks: Default::default(),
        };
        c.restore().await;
        c
    }

    /// A loopback port in front of PostgreSQL at `real`.
    pub async fn tcp(real: std::net::SocketAddr) -> Cuttable {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = l.local_addr().expect("addr");
        drop(l);
        let c = Cuttable {
            upstream: Arc::new(Upstream::Tcp(real)),
            front: Front::Tcp(addr),
            tasks: Default::default(),
        };
        c.restore().await;
        c
    }

    /// `unix://…` for a Unix front.
    pub fn docker_host(&self) -> String {
        match &self.front {
            Front::Unix(p) => format!("unix://{}", p.display()),
            Front::Tcp(a) => format!("tcp://{a}"),
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        match &self.front {
            Front::Tcp(a) => *a,
            Front::Unix(_) => panic!("a Unix socket proxy has no address"),
        }
    }

    /// The backend "goes down": open connections drop, new ones are refused.
    pub fn cut(&self) {
        for t in self.tasks.lock().expect("tasks").drain(..) {
            t.abort();
        }
        if let Front::Unix(p) = &self.front {
            let _ = std::fs::remove_file(p);
        }
    }

    /// The backend "comes back".
    pub async fn restore(&self) {
        self.cut();
        let tasks = Arc::clone(&self.tasks);
        let upstream = Arc::clone(&self.upstream);
        let accept = match &self.front {
            Front::Unix(p) => {
                let l = UnixListener::bind(p).expect("binding the proxy socket");
                tokio::spawn(async move {
                    while let Ok((conn, _)) = l.accept().await {
                        let Upstream::Unix(real) = &*upstream else {
                            return;
                        };
                        if let Ok(up) = UnixStream::connect(real).await {
                            let t = tokio::spawn(pipe(conn, up));
                            tasks.lock().expect("tasks").push(t);
                        }
                    }
                })
            }
            Front::Tcp(a) => {
                // The port was free a moment ago; retry briefly if the OS is slow
                // to release it after a cut.
                let mut l = None;
                for _ in 0..50 {
                    match TcpListener::bind(a).await {
                        Ok(x) => {
                            l = Some(x);
                            break;
                        }
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    }
                }
                let l = l.expect("re-binding the proxy port");
                tokio::spawn(async move {
                    while let Ok((conn, _)) = l.accept().await {
                        let Upstream::Tcp(real) = &*upstream else {
                            return;
                        };
                        if let Ok(up) = TcpStream::connect(real).await {
                            let t = tokio::spawn(pipe(conn, up));
                            tasks.lock().expect("tasks").push(t);
                        }
                    }
                })
            }
        };
        self.tasks.lock().expect("tasks").push(accept);
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        self.cut();
    }
}
