//! Requests this broker sends other brokers, in the Kafka protocol to the address they
//! registered: the transaction coordinator's WriteTxnMarkers to partition leaders, and a
//! partition leader's AddPartitionsToTxn to a transaction's coordinator (KIP-890). One
//! connection per call: these are rare next to client traffic (one per transaction and
//! partition leader); a pooled connection per peer is the step when they are not.

use std::time::Duration;

use bytes::Bytes;
use gregor_metadata::MetadataImage;
use gregor_protocol::kafka::protocol::{Decodable, Encodable};
use gregor_protocol::{decode_response, encode_request, ApiKey};
use gregor_raft::network::read_frame;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How long a call may take, connection included, before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("broker {0} is not registered")]
    Unknown(i32),
    #[error("broker {node} at {address}: {error}")]
    Io {
        node: i32,
        address: String,
        error: std::io::Error,
    },
    #[error("broker {0} did not answer in time")]
    Timeout(i32),
    #[error("a {0:?} request or response that cannot be encoded or decoded: {1}")]
    Protocol(ApiKey, String),
}

/// Sends `request` as `api` `version` to broker `node` (at the address `image` has for it)
/// and decodes its answer.
pub async fn call<Req: Encodable, Resp: Decodable>(
    image: &MetadataImage,
    node: i32,
    api: ApiKey,
    version: i16,
    request: &Req,
) -> Result<Resp, PeerError> {
    let registration = image.brokers.get(&node).ok_or(PeerError::Unknown(node))?;
    let address = format!("{}:{}", registration.host, registration.port);
    let frame = encode_request(api, version, 1, "gregor-broker", request)
        .map_err(|e| PeerError::Protocol(api, e.to_string()))?;
    let exchange = async {
        let mut stream = TcpStream::connect(&address).await?;
        stream.set_nodelay(true)?;
        stream.write_all(&frame).await?;
        let body = read_frame(&mut stream).await?;
        Ok::<_, std::io::Error>(Bytes::from(body))
    };
    let body = tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .map_err(|_| PeerError::Timeout(node))?
        .map_err(|error| PeerError::Io {
            node,
            address: address.clone(),
            error,
        })?;
    let (_, response) =
        decode_response(api, version, body).map_err(|e| PeerError::Protocol(api, e.to_string()))?;
    Ok(response)
}
