//! Connections: one task each, requests answered in the order they arrive (the protocol's rule).
//! Anything that cannot be framed or decoded closes that connection with a log line; the broker and
//! every other connection carry on.
//!
//! What one client can take is bounded: connections by `max.connections` and
//! `max.connections.per.ip` (`quotas`); memory by `queued.max.request.bytes`, which every request
//! being read or handled counts against by its announced size (`budget`), its bytes buffered only
//! as they arrive; time by `request.timeout.ms`, within which a request must arrive whole once it
//! has begun, and `connections.max.idle.ms` between requests and for an answer to be taken; the
//! log by a few lines per peer address a minute (`noisy_peers`). Answers are not counted in the
//! budget: a connection holds one at a time, bounded by the request that asked for it.

mod budget;
pub mod controller_listener;
mod noisy_peers;
pub mod peers;
mod quotas;
pub mod raft_senders;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gregor_protocol::frame::{announced_size, next_frame};
use gregor_protocol::{decode_request, DecodeError};
use gregor_raft::network::{parse_request, RAFT_API_KEY};
use gregor_storage::FileSlice;
use tokio::io::Interest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub use quotas::parse_overrides;

use crate::broker::Broker;
use crate::handlers::{self, Reply, ResponsePart};
use budget::{RequestBudget, Reserved};
use noisy_peers::NoisyPeers;
use quotas::ConnectionQuotas;

/// What the connections share.
struct Shared {
    quotas: Arc<ConnectionQuotas>,
    budget: RequestBudget,
    noisy: NoisyPeers,
    max_frame: usize,
    idle: Duration,
    request_timeout: Duration,
    /// On a broker only (a learner of the metadata log): whose addresses may send Raft's
    /// frames (`raft_senders`). `None` on a controller.
    raft_sources: Option<Arc<raft_senders::RaftSources>>,
}

/// How often a failing accept (out of file descriptors) is logged.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// A connection's read buffer between requests.
const READ_BUFFER: usize = 64 * 1024;

pub async fn accept_loop(broker: Arc<Broker>, listener: TcpListener) {
    let config = &broker.config;
    let budget_bytes = match config.get_i64("queued.max.request.bytes") {
        bytes if bytes > 0 => bytes as usize,
        _ => budget::default_bytes(),
    };
    let shared = Arc::new(Shared {
        quotas: Arc::new(ConnectionQuotas::new(config)),
        budget: RequestBudget::new(budget_bytes),
        noisy: NoisyPeers::default(),
        max_frame: config.get_i64("socket.request.max.bytes") as usize,
        idle: Duration::from_millis(config.get_i64("connections.max.idle.ms") as u64),
        request_timeout: Duration::from_millis(config.get_i64("request.timeout.ms") as u64),
        raft_sources: (!config.cluster.controller).then(|| broker.raft_sources.clone()),
    });
    tracing::info!(
        queued_max_request_bytes = budget_bytes,
        "accepting connections"
    );
    let mut last_error_log: Option<Instant> = None;
    let mut failed_accepts = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => match shared.quotas.admit(peer.ip()) {
                Ok(admitted) => {
                    let _ = stream.set_nodelay(true);
                    let (broker, shared) = (broker.clone(), shared.clone());
                    tokio::spawn(async move {
                        serve_connection(broker, &shared, stream, peer).await;
                        drop(admitted);
                    });
                }
                Err(over) => {
                    if shared.noisy.may_log(peer.ip()) {
                        tracing::warn!(%peer, ?over, "connection refused: over a connection quota");
                    }
                }
            },
            Err(e) => {
                // Out of file descriptors, typically: the connections already open keep being
                // served; one line a minute says so instead of one per attempt.
                failed_accepts += 1;
                if last_error_log.is_none_or(|t| t.elapsed() >= ACCEPT_ERROR_LOG_INTERVAL) {
                    tracing::error!(error = %e, failed_accepts, "cannot accept connections (raise the open files limit, ulimit -n, if it is reached); open connections are still served");
                    last_error_log = Some(Instant::now());
                    failed_accepts = 0;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    broker: Arc<Broker>,
    shared: &Shared,
    mut stream: TcpStream,
    peer: SocketAddr,
) {
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let mut stop = broker.shutdown_signal();
    let mut client = handlers::Client {
        peer,
        software: None,
    };
    let log = |what: &dyn Fn()| {
        if shared.noisy.may_log(peer.ip()) {
            what();
        }
    };
    // The budget taken by the request being read, and when its first bytes arrived.
    let mut reading: Option<(Reserved, Instant)> = None;
    // Whether this peer may send Raft's frames, once one came.
    let mut raft_sender: Option<bool> = None;
    loop {
        let frame = match next_frame(&mut buf, shared.max_frame) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                if let (None, Some(size)) = (&reading, announced_size(&buf)) {
                    let started = Instant::now();
                    let Some(reserved) = reserve(shared, size, &mut stop, peer).await else {
                        return;
                    };
                    reading = Some((reserved, started));
                }
                let wait = match &reading {
                    // A request has begun: it must arrive whole in time.
                    Some((_, started)) => shared.request_timeout.saturating_sub(started.elapsed()),
                    None if buf.is_empty() => shared.idle,
                    None => shared.request_timeout,
                };
                tokio::select! {
                    read = tokio::time::timeout(wait, stream.read_buf(&mut buf)) => match read {
                        Err(_) if buf.is_empty() => {
                            tracing::debug!(%peer, "closing idle connection");
                            return;
                        }
                        Err(_) => {
                            log(&|| tracing::info!(%peer, received = buf.len(), "closing connection: a request did not arrive whole within request.timeout.ms"));
                            return;
                        }
                        Ok(Ok(0)) => {
                            if !buf.is_empty() {
                                log(&|| tracing::info!(%peer, pending = buf.len(), "connection closed in the middle of a request"));
                            }
                            return;
                        }
                        Ok(Ok(_)) => continue,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "read failed");
                            return;
                        }
                    },
                    _ = stop.changed() => return,
                }
            }
            Err(e) => {
                log(&|| tracing::warn!(%peer, error = %e, "closing connection: bad frame"));
                return;
            }
        };
        // A request that came in one read took no budget yet: take it now, for its handling.
        let reserved = match reading.take() {
            Some((reserved, _)) => reserved,
            None => match reserve(shared, frame.len() + 4, &mut stop, peer).await {
                Some(reserved) => reserved,
                None => return,
            },
        };
        let frame_len = frame.len();
        // A broker only is a learner of the metadata quorum: its leader replicates here.
        let raft = match &shared.raft_sources {
            Some(sources) => parse_request(RAFT_API_KEY, &frame).map(|r| (r, sources)),
            None => None,
        };
        let response = if let Some(((correlation_id, body), sources)) = raft {
            if raft_sender.is_none() {
                raft_sender = Some(sources.admits(&broker.controller, peer.ip()).await);
            }
            if raft_sender == Some(false) {
                log(&|| raft_senders::refused(peer));
                return;
            }
            let answer = broker
                .controller
                .quorum()
                .answer(correlation_id, body)
                .await;
            Some(Reply::Send(answer.into()))
        } else {
            match decode_request(frame) {
                Ok(request) => match handlers::handle(&broker, request, &mut client).await {
                    Reply::Nothing => None,
                    Reply::Close => return,
                    reply => Some(reply),
                },
                Err(DecodeError::UnsupportedApiVersions {
                    correlation_id,
                    version,
                }) => {
                    log(
                        &|| tracing::info!(%peer, version, "ApiVersions version unsupported; answering with v0"),
                    );
                    Some(Reply::Send(handlers::api_versions::unsupported_version(
                        correlation_id,
                    )))
                }
                Err(e) => {
                    log(
                        &|| tracing::warn!(%peer, error = %e, "closing connection: undecodable request"),
                    );
                    return;
                }
            }
        };
        drop(reserved);
        // The buffer a large request was read into is shared with its frame: an idle
        // connection must not keep it.
        if frame_len > READ_BUFFER && buf.is_empty() {
            buf = BytesMut::with_capacity(READ_BUFFER);
        }
        if let Some(response) = response {
            // A client that does not read its answer is closed like an idle one.
            match tokio::time::timeout(shared.idle, write_reply(&mut stream, &response)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "write failed");
                    return;
                }
                Err(_) => {
                    log(
                        &|| tracing::info!(%peer, "closing connection: its answer was not read within connections.max.idle.ms"),
                    );
                    return;
                }
            }
        }
    }
}

/// Writes a response; record batches in segment files go with `sendfile`, from the page cache
/// to the socket without a copy through the broker.
async fn write_reply(stream: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    match reply {
        Reply::Send(bytes) => stream.write_all(bytes).await,
        Reply::SendParts(parts) => {
            for part in parts {
                match part {
                    ResponsePart::Bytes(bytes) => stream.write_all(bytes).await?,
                    ResponsePart::File(slice) => send_file(stream, slice).await?,
                }
            }
            Ok(())
        }
        Reply::Nothing | Reply::Close => Ok(()),
    }
}

/// Sends a file slice, as the socket takes it. The slice holds its file open, so a segment
/// deleted meanwhile (retention, compaction) is still sent whole; a file that turns out shorter
/// fails the send, which closes the connection (the client retries the fetch).
async fn send_file(stream: &TcpStream, slice: &FileSlice) -> std::io::Result<()> {
    let mut position = slice.position;
    let end = slice.position + slice.len as u64;
    while position < end {
        stream.writable().await?;
        let count = usize::try_from(end - position).unwrap_or(usize::MAX);
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, &*slice.file, Some(&mut position), count)
                .map_err(std::io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the segment file ended before the batches a fetch sends from it",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Takes `size` bytes of the request budget for a request of `peer`. Waiting for room counts
/// against the request's time, so requests that never arrive cannot keep the budget from the
/// others for long: `None` (close the connection) after `request.timeout.ms` or at shutdown.
async fn reserve(
    shared: &Shared,
    size: usize,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    peer: SocketAddr,
) -> Option<Reserved> {
    tokio::select! {
        reserved = tokio::time::timeout(shared.request_timeout, shared.budget.reserve(size)) => {
            if reserved.is_err() && shared.noisy.may_log(peer.ip()) {
                tracing::info!(%peer, size, "closing connection: no room for its request within request.timeout.ms (queued.max.request.bytes is taken)");
            }
            reserved.ok()
        }
        _ = stop.changed() => None,
    }
}
