//! Listeners and connections. Like Kafka's SocketServer, a connection handles one request at a
//! time and answers in order (clients pipeline, so the next request is already buffered). Unlike
//! Kafka, an acks=all produce does not hold the connection while its ISR catches up: its records
//! are appended in order, and the wait runs beside the next requests (as Redpanda does), because
//! librdkafka-based clients send one partition per Produce request and would otherwise get one
//! replication round trip per partition per connection. A bad
//! frame costs only its own connection. Shutdown stops accepting, lets every connection finish the
//! request it is handling, then returns so the caller can flush and checkpoint the logs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio::io::{AsyncRead, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::peer::principal_name;
use super::sasl::{Authenticator, Verdict};
use crate::api::{self, Outcome};
use crate::broker::Broker;
use crate::frame::{FrameError, read_frame, write_frame};
use crate::zero_copy::{RegionSink, write_parts};

/// How long shutdown waits for in-flight requests (long-polling fetches end sooner: they are
/// capped and return early when their connection is told to stop).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const READ_BUFFER: usize = 64 * 1024;
/// A client that opens a TLS connection and stalls must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Deferred responses (acks=all produces waiting for their ISR) one connection may have at once
/// before it stops reading: above any client's `max.in.flight.requests.per.connection` for
/// idempotent producers (5), and a bound on what a client that pipelines without limit costs.
const MAX_DEFERRED: usize = 16;

pub struct BoundListener {
    pub name: String,
    pub listener: TcpListener,
    /// Set for SSL listeners.
    pub tls: Option<TlsAcceptor>,
}

/// Binds every configured listener, failing with the address in the message. SSL listeners load
/// their key and trust stores here, so a bad certificate stops the start.
pub async fn bind(broker: &Broker) -> anyhow::Result<Vec<BoundListener>> {
    let mut bound = Vec::new();
    for l in &broker.config.listeners {
        // The metadata quorum serves the controller listeners (gRPC), not the Kafka protocol.
        if broker.config.controller_listener_names.contains(&l.name) {
            continue;
        }
        let tls = match broker.config.ssl.get(&l.name) {
            Some(settings) => Some(crate::tls::acceptor(&l.name, settings)?),
            None => None,
        };
        let addr = format!("{}:{}", l.host, l.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {} ({addr}): {e}", l.name))?;
        bound.push(BoundListener {
            name: l.name.clone(),
            listener,
            tls,
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
        tokio::sync::mpsc::channel::<(TcpStream, SocketAddr, String, Option<TlsAcceptor>)>(64);
    for l in listeners {
        let tx = accepted_tx.clone();
        accepts.spawn(async move {
            loop {
                match l.listener.accept().await {
                    Ok((stream, peer)) => {
                        let accepted = (stream, peer, l.name.clone(), l.tls.clone());
                        if tx.send(accepted).await.is_err() {
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
            Some((stream, peer, listener, tls)) = accepted_rx.recv() => {
                let broker = broker.clone();
                let stop = conn_stop_rx.clone();
                connections.spawn(async move {
                    handle_connection(broker, stream, peer, listener, tls, stop).await;
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
    tls: Option<TlsAcceptor>,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
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
    debug!(%peer, "connection opened");
    let auth = Authenticator::for_listener(&broker, &listener, peer.to_string());
    match tls {
        None => {
            let (rd, wr) = stream.split();
            let origin = api::Origin::new(&listener, Some(peer), true);
            serve_requests(&broker, rd, wr, peer, origin, auth, &closed_on_error, stop).await;
        }
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    // A client certificate names the principal (SASL, when the listener has
                    // it, names it again after the login).
                    let certificate = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|c| c.as_ref().to_vec());
                    let mut origin = api::Origin::new(&listener, Some(peer), false);
                    match principal_name(
                        certificate.as_deref(),
                        &broker.config.ssl_principal_mapper,
                    ) {
                        Ok(name) => {
                            if let Some(name) = name {
                                origin.set_user(&name);
                            }
                            let (rd, wr) = tokio::io::split(tls);
                            serve_requests(
                                &broker,
                                rd,
                                wr,
                                peer,
                                origin,
                                auth,
                                &closed_on_error,
                                stop,
                            )
                            .await;
                        }
                        Err(e) => {
                            warn!(%peer, %listener, error = %e, "client certificate refused");
                            closed_on_error.inc();
                        }
                    }
                }
                // Usually a plaintext client on an SSL port, or a client that does not trust
                // the broker's certificate.
                Ok(Err(e)) => {
                    warn!(%peer, %listener, error = %e, "TLS handshake failed");
                    closed_on_error.inc();
                }
                Err(_) => {
                    warn!(%peer, %listener, "TLS handshake timed out");
                    closed_on_error.inc();
                }
            }
        }
    }
    open.dec();
    debug!(%peer, "connection closed");
}

/// Reads requests and writes responses in order until the peer leaves, a frame is bad, or the
/// broker stops. Requests are handled one at a time, in order; only the tail of a deferred one
/// (an acks=all produce waiting for its ISR) runs while the next requests are read and handled,
/// up to `MAX_DEFERRED` of them. Their responses, and any response behind them, wait their turn.
/// On a SASL listener every frame passes the connection's `Authenticator` first.
#[allow(clippy::too_many_arguments)]
async fn serve_requests<R, W>(
    broker: &Arc<Broker>,
    rd: R,
    mut wr: W,
    peer: SocketAddr,
    mut origin: api::Origin,
    mut auth: Option<Authenticator>,
    closed_on_error: &prometheus::IntCounter,
    mut stop: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send,
    W: RegionSink,
{
    let max = broker.config.socket_request_max_bytes;
    let limit = |auth: &Option<Authenticator>| auth.as_ref().map_or(max, |a| a.frame_limit(max));
    // The read in progress owns the reader and hands it back with the frame, so waiting for a
    // deferred response and for the next frame at once never drops a half-read frame.
    // A connection muted by a quota throttle reads nothing until the mute ends (KIP-219);
    // responses already due are still written meanwhile.
    let read_next = move |mut rd: BufReader<R>, max: u32, muted: Option<std::time::Instant>| async move {
        if let Some(until) = muted {
            tokio::time::sleep_until(until.into()).await;
        }
        let frame = read_frame(&mut rd, max).await;
        (rd, frame)
    };
    let mut reading = Some(Box::pin(read_next(
        BufReader::with_capacity(READ_BUFFER, rd),
        limit(&auth),
        None,
    )));
    let mut idle_reader = None;
    let mut pending: FuturesOrdered<api::Pending> = FuturesOrdered::new();
    let mut stopping = false;
    loop {
        if reading.is_none()
            && !stopping
            && pending.len() < MAX_DEFERRED
            && let Some(rd) = idle_reader.take()
        {
            reading = Some(Box::pin(read_next(rd, limit(&auth), origin.mute.until())));
        }
        if reading.is_none() && pending.is_empty() {
            break;
        }
        let frame = tokio::select! {
            biased;
            Some(outcome) = pending.next(), if !pending.is_empty() => {
                if !respond(outcome, &mut wr, peer, closed_on_error).await {
                    break;
                }
                continue;
            }
            read = async { reading.as_mut().expect("guarded").await }, if reading.is_some() => {
                reading = None;
                let (rd, frame) = read;
                idle_reader = Some(rd);
                frame
            }
            _ = stop.changed(), if !stopping => {
                // Finish what is in flight, read nothing more.
                stopping = true;
                reading = None;
                continue;
            }
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
        let frame = match auth.as_mut() {
            None => frame,
            Some(auth) => match auth.on_frame(frame).await {
                Verdict::Pass(frame) => {
                    if let Some(user) = auth.principal() {
                        origin.set_user(user);
                    }
                    frame
                }
                Verdict::Answer(outcome) => {
                    if !pending.is_empty() {
                        pending.push_back(Box::pin(async { outcome }));
                    } else if !respond(outcome, &mut wr, peer, closed_on_error).await {
                        break;
                    }
                    continue;
                }
                Verdict::AnswerThenClose(outcome, reason) => {
                    // What was asked before goes out first, then this answer, then the close.
                    while let Some(earlier) = pending.next().await {
                        if !respond(earlier, &mut wr, peer, closed_on_error).await {
                            break;
                        }
                    }
                    respond(outcome, &mut wr, peer, closed_on_error).await;
                    debug!(%peer, %reason, "closing connection");
                    break;
                }
                Verdict::Close(reason) => {
                    warn!(%peer, %reason, "closing connection");
                    closed_on_error.inc();
                    break;
                }
            },
        };
        match api::handle_frame(broker, frame, &origin).await {
            Outcome::Deferred(rest) => pending.push_back(rest),
            // Behind deferred responses, an answer waits its turn.
            outcome if !pending.is_empty() => pending.push_back(Box::pin(async { outcome })),
            outcome => {
                if !respond(outcome, &mut wr, peer, closed_on_error).await {
                    break;
                }
            }
        }
        if *stop.borrow() {
            stopping = true;
        }
    }
}

/// Writes one request's outcome; false when the connection must end.
async fn respond<W: RegionSink>(
    outcome: Outcome,
    wr: &mut W,
    peer: SocketAddr,
    closed_on_error: &prometheus::IntCounter,
) -> bool {
    match outcome {
        Outcome::Respond(bytes) => {
            if let Err(e) = write_frame(wr, &bytes).await {
                debug!(%peer, error = %e, "write failed");
                return false;
            }
            true
        }
        Outcome::RespondParts(parts) => {
            if let Err(e) = write_parts(wr, &parts).await {
                debug!(%peer, error = %e, "write failed");
                return false;
            }
            true
        }
        Outcome::NoResponse => true,
        Outcome::Close(reason) => {
            warn!(%peer, %reason, "closing connection");
            closed_on_error.inc();
            false
        }
        // `handle_frame` resolves a deferred outcome to one of the others.
        Outcome::Deferred(_) => {
            warn!(%peer, "closing connection: nested deferred response");
            false
        }
    }
}
