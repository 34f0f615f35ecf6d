//! One Kafka request over a fresh plain TCP connection, for the few APIs librdkafka has no
//! client call for (ApiVersions per broker, ListTransactions, DescribeTransactions). Messages are
//! proto-kafka's; only PLAINTEXT listeners can be reached this way.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use gregor_protocol::kafka::protocol::{Decodable, Encodable};
use gregor_protocol::ApiKey;

/// The largest response accepted (a Kafka broker's answers to these APIs are small).
const MAX_RESPONSE: usize = 64 << 20;

/// Sends `request` as `api` `version` to `host:port` and decodes the response.
pub(crate) fn call<Req: Encodable, Resp: Decodable>(
    (host, port): (&str, u16),
    api: ApiKey,
    version: i16,
    request: &Req,
    timeout: Duration,
) -> anyhow::Result<Resp> {
    let addr = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("no address for {host}"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {host}:{port}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let frame = gregor_protocol::encode_request(api, version, 1, "gregor-cli", request)
        .context("cannot encode the request")?;
    s.write_all(&frame)?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size)
        .with_context(|| format!("no {api:?} response from {host}:{port}"))?;
    let size = i32::from_be_bytes(size);
    if size < 4 || size as usize > MAX_RESPONSE {
        bail!("bad {api:?} response size {size} from {host}:{port}");
    }
    let mut buf = vec![0u8; size as usize];
    s.read_exact(&mut buf)?;
    let (_, response) = gregor_protocol::decode_response(api, version, Bytes::from(buf))
        .with_context(|| format!("malformed {api:?} response"))?;
    Ok(response)
}
