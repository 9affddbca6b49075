//! Connections: a TCP listener that holds at most `connections_max` connections open
//! (past that, accepting waits until one closes; new clients queue in the kernel's
//! backlog), and the loop serving them with timeouts, so that idle or half-sent
//! connections cannot hold those places: a request's head must arrive within
//! `header_read_timeout` (also the keep-alive idle limit: the wait for the next head),
//! its body within `body_read_timeout` (a middleware in `lib.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

pub struct LimitedListener {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    write_stall_max: std::time::Duration,
}

impl LimitedListener {
    pub fn new(listener: TcpListener, connections_max: usize, write_stall_max: std::time::Duration) -> LimitedListener {
        LimitedListener { listener, permits: Arc::new(Semaphore::new(connections_max.max(1))), write_stall_max }
    }
}

/// A connection and its place among the allowed ones, given back when it closes. A
/// write that makes no progress for `write_stall_max` (a client that sends requests but
/// never reads the answers, so that hyper stops reading and no read timeout runs)
/// fails, which closes the connection.
pub struct LimitedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    write_stall_max: std::time::Duration,
    stalled_since: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl LimitedStream {
    /// After a write returned Pending: fails once it has been stuck too long.
    fn check_stall(&mut self, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let max = self.write_stall_max;
        let stall = self.stalled_since.get_or_insert_with(|| Box::pin(tokio::time::sleep(max)));
        match stall.as_mut().poll(context) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing of its answers for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(
        &mut self,
        result: Poll<std::io::Result<T>>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<T>> {
        match result {
            Poll::Pending => match self.check_stall(context) {
                Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
                _ => Poll::Pending,
            },
            ready => {
                self.stalled_since = None;
                ready
            }
        }
    }
}

impl LimitedListener {
    async fn accept(&mut self) -> (LimitedStream, std::net::SocketAddr) {
        let permit = self.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        loop {
            match self.listener.accept().await {
                Ok((stream, address)) => {
                    let _ = stream.set_nodelay(true);
                    let write_stall_max = self.write_stall_max;
                    return (LimitedStream { stream, _permit: permit, write_stall_max, stalled_since: None }, address);
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait, then try again.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// The most a connection's read buffer holds: a request head must fit.
const HEAD_BUFFER_BYTES_MAX: usize = 64 << 10;

/// Serves `app` on every accepted connection until `shutdown` completes; then stops
/// accepting, lets each connection finish its request in flight, and returns once all
/// are closed. Each request carries its peer's address (`ConnectInfo`).
pub async fn serve(
    mut listener: LimitedListener,
    app: axum::Router,
    header_read_timeout: std::time::Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_connections, stop_signal) = tokio::sync::watch::channel(false);
    // Every connection task holds a clone of `open`; `all_closed` resolves when none is left.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        let mut stop_signal = stop_signal.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            // A request head may be 64 KiB (hyper's default is ~400 KiB a connection).
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .max_buf_size(HEAD_BUFFER_BYTES_MAX);
            let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = async { stop_signal.wait_for(|stop| *stop).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop_connections.send(true);
    drop(open);
    let _ = all_closed.recv().await;
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(mut self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(context, buffer);
        self.progressed(result, context)
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.stream).poll_flush(context);
        self.progressed(result, context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(context, buffers);
        self.progressed(result, context)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
