//! Listeners and connections. Like Kafka's SocketServer, a connection handles one request at a
//! time and answers in order (clients pipeline, so the next request is already buffered). A bad
//! frame costs only its own connection. Shutdown stops accepting, lets every connection finish the
//! request it is handling, then returns so the caller can flush and checkpoint the logs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::frame::{FrameError, read_frame, write_frame};
use crate::api::{self, Outcome};
use crate::broker::Broker;

/// How long shutdown waits for in-flight requests (long-polling fetches end sooner: they are
/// capped and return early when their connection is told to stop).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const READ_BUFFER: usize = 64 * 1024;

pub struct BoundListener {
    pub name: String,
    pub listener: TcpListener,
}

/// Binds every configured listener, failing with the address in the message.
pub async fn bind(broker: &Broker) -> anyhow::Result<Vec<BoundListener>> {
    let mut bound = Vec::new();
    for l in &broker.config.listeners {
        // The metadata quorum serves the controller listeners (gRPC), not the Kafka protocol.
        if broker.config.controller_listener_names.contains(&l.name) {
            continue;
        }
        let addr = format!("{}:{}", l.host, l.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {} ({addr}): {e}", l.name))?;
        bound.push(BoundListener {
            name: l.name.clone(),
            listener,
        });
    }
    Ok(bound)
}

/// Serves until `shutdown` turns true, then drains connections.
pub async fn serve(
    broker: Arc<Broker>,
    listeners: Vec<BoundListener>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let mut accepts = JoinSet::new();
    let (conn_stop_tx, conn_stop_rx) = watch::channel(false);
    let (accepted_tx, mut accepted_rx) =
        tokio::sync::mpsc::channel::<(TcpStream, SocketAddr, String)>(64);
    for l in listeners {
        let tx = accepted_tx.clone();
        accepts.spawn(async move {
            loop {
                match l.listener.accept().await {
                    Ok((stream, peer)) => {
                        if tx.send((stream, peer, l.name.clone())).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        warn!(listener = %l.name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    drop(accepted_tx);
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            Some((stream, peer, listener)) = accepted_rx.recv() => {
                let broker = broker.clone();
                let stop = conn_stop_rx.clone();
                connections.spawn(async move {
                    handle_connection(broker, stream, peer, listener, stop).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    accepts.abort_all();
    info!(
        open = connections.len(),
        "shutting down: draining connections"
    );
    let _ = conn_stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            left = connections.len(),
            "connections did not finish in time; closing them"
        );
        connections.abort_all();
    }
}

async fn handle_connection(
    broker: Arc<Broker>,
    mut stream: TcpStream,
    peer: SocketAddr,
    listener: String,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let origin = api::Origin::new(&listener, Some(peer));
    let metrics = &broker.metrics;
    metrics
        .connections_accepted
        .with_label_values(&[listener.as_str()])
        .inc();
    let open = metrics.connections.with_label_values(&[listener.as_str()]);
    open.inc();
    let closed_on_error = metrics
        .connections_closed_on_error
        .with_label_values(&[listener.as_str()]);
    let max = broker.config.socket_request_max_bytes;
    let (rd, mut wr) = stream.split();
    let mut rd = BufReader::with_capacity(READ_BUFFER, rd);
    debug!(%peer, "connection opened");
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => break,
            f = read_frame(&mut rd, max) => f,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(FrameError::Io(e)) => {
                debug!(%peer, error = %e, "connection error");
                break;
            }
            Err(e) => {
                warn!(%peer, error = %e, "closing connection: bad frame");
                closed_on_error.inc();
                break;
            }
        };
        match api::handle_frame(&broker, frame, &origin).await {
            Outcome::Respond(bytes) => {
                if let Err(e) = write_frame(&mut wr, &bytes).await {
                    debug!(%peer, error = %e, "write failed");
                    break;
                }
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => {
                warn!(%peer, %reason, "closing connection");
                closed_on_error.inc();
                break;
            }
        }
        if *stop.borrow() {
            break;
        }
    }
    open.dec();
    debug!(%peer, "connection closed");
}
