//! ApiVersions: the API versions gregor serves, and (v3+) its supported and finalized feature
//! levels (KIP-584); KIP-511's answer to a version newer than gregor knows.

use bytes::Bytes;
use gregor_metadata::{features, MetadataImage};
use gregor_protocol::kafka::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use gregor_protocol::kafka::messages::ApiVersionsResponse;
use gregor_protocol::kafka::ResponseError;
use gregor_protocol::versions::SUPPORTED;
use gregor_protocol::ApiKey;

use super::groups::consumer_protocol_enabled;
use super::str_bytes;

/// The served APIs; those of the KIP-848 consumer protocol only while `group.version` enables it
/// (`None`: no image to ask, as for a KIP-511 fallback, which lists everything).
fn table(image: Option<&MetadataImage>) -> Vec<ApiVersion> {
    let consumer_protocol = image.is_none_or(consumer_protocol_enabled);
    SUPPORTED
        .iter()
        .filter(|(api, _, _)| {
            consumer_protocol
                || !matches!(
                    api,
                    ApiKey::ConsumerGroupHeartbeat | ApiKey::ConsumerGroupDescribe
                )
        })
        .map(|&(api, min, max)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

pub fn handle(image: &MetadataImage) -> ApiVersionsResponse {
    let supported = features::SUPPORTED.iter().map(|f| {
        SupportedFeatureKey::default()
            .with_name(str_bytes(f.name))
            .with_min_version(f.min)
            .with_max_version(f.max)
    });
    // Kafka reports each finalized feature as the range [level, level].
    let finalized = image.features.iter().map(|(name, &level)| {
        FinalizedFeatureKey::default()
            .with_name(str_bytes(name))
            .with_min_version_level(level)
            .with_max_version_level(level)
    });
    ApiVersionsResponse::default()
        .with_api_keys(table(Some(image)))
        .with_supported_features(supported.collect())
        .with_finalized_features_epoch(image.offset)
        .with_finalized_features(finalized.collect())
}

/// The v0 response with ResponseError::UnsupportedVersion.code() and gregor's ranges, so the client can retry with a
/// version both sides know.
pub fn unsupported_version(correlation_id: i32) -> Bytes {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(table(None));
    gregor_protocol::encode_response(ApiKey::ApiVersions, 0, correlation_id, &response)
        .expect("a v0 ApiVersions response always encodes")
}
