//! UpdateFeatures (KIP-584): raise or lower finalized feature levels, decided by the controller
//! as one all-or-nothing change and committed as metadata records. (DescribeFeatures has no API
//! of its own: admin clients read the levels from ApiVersions.)

use gregor_metadata::features::{FeatureUpdate, UpgradeType};
use gregor_metadata::ControllerRequest;
use gregor_protocol::kafka::messages::update_features_response::UpdatableFeatureResult;
use gregor_protocol::kafka::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};

use super::str_bytes;
use crate::broker::Broker;

pub async fn update_features(
    broker: &Broker,
    version: i16,
    request: UpdateFeaturesRequest,
) -> UpdateFeaturesResponse {
    let updates: Vec<FeatureUpdate> = request
        .feature_updates
        .iter()
        .map(|u| FeatureUpdate {
            name: u.feature.to_string(),
            level: u.max_version_level,
            upgrade_type: if version == 0 {
                Some(if u.allow_downgrade {
                    UpgradeType::SafeDowngrade
                } else {
                    UpgradeType::Upgrade
                })
            } else {
                UpgradeType::from_code(u.upgrade_type)
            },
        })
        .collect();
    let decision = ControllerRequest::UpdateFeatures {
        updates: updates.clone(),
    };
    let outcome = broker
        .controller
        .call(decision, request.validate_only)
        .await;
    let (code, message) = match outcome {
        Ok(_) => (0, None),
        Err(e) => {
            tracing::info!(error = %e.message, "feature update refused");
            (e.code, Some(str_bytes(&e.message)))
        }
    };
    // Up to v1 every feature carries the request's outcome; v2 dropped the per-feature results.
    let results = if version < 2 {
        updates
            .iter()
            .map(|u| {
                UpdatableFeatureResult::default()
                    .with_feature(str_bytes(&u.name))
                    .with_error_code(code)
                    .with_error_message(message.clone())
            })
            .collect()
    } else {
        Vec::new()
    };
    UpdateFeaturesResponse::default()
        .with_error_code(code)
        .with_error_message(message)
        .with_results(results)
}
