//! The Kafka wire protocol as gregor speaks it.
//!
//! Message bodies come from the `proto-kafka` crate (generated from Kafka's JSON schemas). It is
//! chosen over `kafka-protocol` because its decoders refuse an array, string or byte length larger
//! than the bytes that remain before allocating (Java's rule), so a hostile length cannot make the
//! broker allocate gigabytes and abort. `tests/fuzz.rs` proves that over random and mutated frames.

pub mod frame;
pub mod parts;
pub mod versions;

pub use proto_kafka as kafka;
pub use proto_kafka::messages::{ApiKey, RequestHeader, RequestKind};

use bytes::{Buf, Bytes, BytesMut};
use proto_kafka::protocol::buf::ByteBufMut;
use proto_kafka::protocol::{Decodable, Encodable};

/// A request that has been framed and decoded.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
}

/// Why a frame could not be turned into a request.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("request header too short ({0} bytes)")]
    ShortHeader(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// An ApiVersions request newer than we know: answered with a v0 response (KIP-511).
    #[error("ApiVersions v{version} is not supported")]
    UnsupportedApiVersions { correlation_id: i32, version: i16 },
    #[error("{api_key:?} v{version} is not supported")]
    UnsupportedVersion { api_key: ApiKey, version: i16 },
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// Decodes one request frame (without its 4-byte size prefix).
pub fn decode_request(mut frame: Bytes) -> Result<Request, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::ShortHeader(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|()| DecodeError::UnknownApiKey(raw_key))?;
    let malformed = |reason: String| DecodeError::Malformed {
        api_key,
        version,
        reason,
    };
    if !versions::decodable(api_key, version) {
        if api_key == ApiKey::ApiVersions {
            return Err(DecodeError::UnsupportedApiVersions {
                correlation_id,
                version,
            });
        }
        return Err(DecodeError::UnsupportedVersion { api_key, version });
    }
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(|e| malformed(e.to_string()))?;
    let body =
        RequestKind::decode(api_key, &mut frame, version).map_err(|e| malformed(e.to_string()))?;
    Ok(Request {
        header,
        api_key,
        body,
    })
}

/// Encodes a response with its size prefix and the response header that `api_key`/`version` use.
pub fn encode_response<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
) -> Result<Bytes, proto_kafka::ProtoError> {
    let mut buf = BytesMut::new();
    encode_response_into(&mut buf, api_key, version, correlation_id, response)?;
    Ok(buf.freeze())
}

/// Encodes a response into parts: its bytes, with [`parts::placeholder`] fields left out as
/// [`parts::Part::Placeholder`]s, for the caller to send from where their data lies.
pub fn encode_response_parts<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
) -> Result<Vec<parts::Part>, proto_kafka::ProtoError> {
    let mut buf = parts::PartsBuf::default();
    encode_response_into(&mut buf, api_key, version, correlation_id, response)?;
    Ok(buf.into_parts())
}

fn encode_response_into<R: Encodable, B: ByteBufMut>(
    buf: &mut B,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &R,
) -> Result<(), proto_kafka::ProtoError> {
    let body_len = response.compute_size(version)?;
    let flexible_header = api_key.response_header_version(version) >= 1;
    let header_len = if flexible_header { 5 } else { 4 };
    let size =
        i32::try_from(header_len + body_len).map_err(|_| proto_kafka::ProtoError::TypeTooLong {
            type_name: "response",
            size: header_len + body_len,
        })?;
    buf.put_i32(size);
    buf.put_i32(correlation_id);
    if flexible_header {
        buf.put_u8(0); // no tagged fields
    }
    response.encode(buf, version)
}

/// A protocol string (topic names, ids) from a Rust one.
pub fn str_bytes(s: &str) -> proto_kafka::protocol::StrBytes {
    proto_kafka::protocol::StrBytes::from_string(s.to_string())
}

/// Reads the correlation id from an encoded response (for tests and tools).
pub fn response_correlation_id(mut response: &[u8]) -> Option<i32> {
    (response.len() >= 8).then(|| {
        response.advance(4);
        response.get_i32()
    })
}

/// Encodes a request as a client sends it: size prefix, the request header that `api_key` /
/// `version` use, and the body.
pub fn encode_request<R: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
    request: &R,
) -> Result<Bytes, proto_kafka::ProtoError> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(proto_kafka::protocol::StrBytes::from_static_str(
            client_id,
        )));
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    header.encode(&mut buf, api_key.request_header_version(version))?;
    request.encode(&mut buf, version)?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes a response frame (without its size prefix) to a request sent as `api_key` /
/// `version`; returns its correlation id and body.
pub fn decode_response<R: Decodable>(
    api_key: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> Result<(i32, R), proto_kafka::ProtoError> {
    let header = proto_kafka::messages::ResponseHeader::decode(
        &mut frame,
        api_key.response_header_version(version),
    )?;
    Ok((header.correlation_id, R::decode(&mut frame, version)?))
}

#[cfg(test)]
mod client_side_tests {
    use super::*;
    use proto_kafka::messages::{ApiVersionsRequest, ApiVersionsResponse};

    #[test]
    fn a_request_encoded_here_decodes_as_the_broker_reads_it_and_back() {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(proto_kafka::protocol::StrBytes::from_static_str("x"));
        let framed = encode_request(ApiKey::ApiVersions, 3, 7, "gregor", &request).unwrap();
        assert_eq!(
            i32::from_be_bytes(framed[..4].try_into().unwrap()) as usize,
            framed.len() - 4
        );
        let decoded = decode_request(framed.slice(4..)).unwrap();
        assert_eq!(decoded.header.correlation_id, 7);
        assert_eq!(decoded.header.client_id.as_deref(), Some("gregor"));
        assert!(matches!(decoded.body, RequestKind::ApiVersions(r) if r == request));

        let response = ApiVersionsResponse::default().with_throttle_time_ms(5);
        let encoded = encode_response(ApiKey::ApiVersions, 3, 7, &response).unwrap();
        let (correlation_id, back): (i32, ApiVersionsResponse) =
            decode_response(ApiKey::ApiVersions, 3, encoded.slice(4..)).unwrap();
        assert_eq!((correlation_id, back), (7, response));
    }
}
