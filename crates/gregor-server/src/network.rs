//! Connections: one task each, requests answered in the order they arrive (the protocol's rule).
//! Anything that cannot be framed or decoded closes that connection with a log line; the broker and
//! every other connection carry on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use gregor_protocol::frame::next_frame;
use gregor_protocol::{decode_request, DecodeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::broker::Broker;
use crate::handlers::{self, Reply};

pub async fn accept_loop(broker: Arc<Broker>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(broker.clone(), stream, peer));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve_connection(broker: Arc<Broker>, mut stream: TcpStream, peer: SocketAddr) {
    let max_frame = broker.config.get_i64("socket.request.max.bytes") as usize;
    // A peer that goes quiet (also halfway through a request) is dropped after this long.
    let idle = Duration::from_millis(broker.config.get_i64("connections.max.idle.ms") as u64);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut stop = broker.shutdown_signal();
    let mut client = handlers::Client {
        peer,
        software: None,
    };
    loop {
        let frame = match next_frame(&mut buf, max_frame) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                tokio::select! {
                    read = tokio::time::timeout(idle, stream.read_buf(&mut buf)) => match read {
                        Err(_) => {
                            tracing::info!(%peer, pending = buf.len(), "closing idle connection");
                            return;
                        }
                        Ok(Ok(0)) => {
                            if !buf.is_empty() {
                                tracing::info!(%peer, pending = buf.len(), "connection closed in the middle of a request");
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
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                return;
            }
        };
        let response = match decode_request(frame) {
            Ok(request) => match handlers::handle(&broker, request, &mut client).await {
                Reply::Send(bytes) => Some(bytes),
                Reply::Nothing => None,
                Reply::Close => return,
            },
            Err(DecodeError::UnsupportedApiVersions {
                correlation_id,
                version,
            }) => {
                tracing::info!(%peer, version, "ApiVersions version unsupported; answering with v0");
                Some(handlers::api_versions::unsupported_version(correlation_id))
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: undecodable request");
                return;
            }
        };
        if let Some(response) = response {
            if let Err(e) = stream.write_all(&response).await {
                tracing::debug!(%peer, error = %e, "write failed");
                return;
            }
        }
    }
}
