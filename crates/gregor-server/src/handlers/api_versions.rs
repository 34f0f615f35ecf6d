//! ApiVersions, including KIP-511's answer to a version newer than gregor knows.

use bytes::Bytes;
use gregor_protocol::kafka::messages::api_versions_response::ApiVersion;
use gregor_protocol::kafka::messages::ApiVersionsResponse;
use gregor_protocol::kafka::ResponseError;
use gregor_protocol::versions::SUPPORTED;
use gregor_protocol::ApiKey;

fn table() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(api, min, max)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub fn handle(_version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(table())
}

/// The v0 response with ResponseError::UnsupportedVersion.code() and gregor's ranges, so the client can retry with a
/// version both sides know.
pub fn unsupported_version(correlation_id: i32) -> Bytes {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(table());
    gregor_protocol::encode_response(ApiKey::ApiVersions, 0, correlation_id, &response)
        .expect("a v0 ApiVersions response always encodes")
}
