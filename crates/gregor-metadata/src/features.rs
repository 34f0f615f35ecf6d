//! Feature levels (KIP-584), as Kafka 4 has them: each feature has a range of levels this software
//! supports and a finalized level, a metadata record, that the whole cluster runs at. Clients read
//! both in ApiVersions and choose behaviour by them (Kafka 4's Java clients pick the KIP-848
//! consumer protocol by `group.version`, KIP-890's transactions by `transaction.version`), so the
//! ranges below claim only what gregor really does.

use proto_kafka::ResponseError;
use serde::{Deserialize, Serialize};

use crate::controller::ControllerError;
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

pub const METADATA_VERSION: &str = "metadata.version";
pub const KRAFT_VERSION: &str = "kraft.version";
pub const GROUP_VERSION: &str = "group.version";
pub const TRANSACTION_VERSION: &str = "transaction.version";
pub const ELR_VERSION: &str = "eligible.leader.replicas.version";

/// A feature's supported levels and the level a new cluster starts at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SupportedFeature {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    pub bootstrap: i16,
}

/// What gregor supports:
/// * `metadata.version` 27 (Kafka 4.1-IV1): the API versions gregor serves are 4.1's; older
///   levels would change nothing here, so they are not offered.
/// * `kraft.version` 0: a static quorum (no KIP-853 voter changes).
/// * `group.version` 1: the KIP-848 consumer protocol; at 0 its APIs are not served.
/// * `transaction.version` 2: KIP-890 part 2 (the epoch bumped at every transaction end, the
///   partition leader adding partitions to transactions); Kafka 4 Java clients use it from
///   level 2 on. Level 1 (Kafka's flexible transaction records) changes nothing here. Clients
///   of older request versions keep the classic protocol at any level.
/// * `eligible.leader.replicas.version` 1: KIP-966's eligible leader replicas
///   (`partition_change.rs`), on for new clusters as in Kafka 4.1.
pub const SUPPORTED: &[SupportedFeature] = &[
    SupportedFeature {
        name: METADATA_VERSION,
        min: 27,
        max: 27,
        bootstrap: 27,
    },
    SupportedFeature {
        name: KRAFT_VERSION,
        min: 0,
        max: 0,
        bootstrap: 0,
    },
    SupportedFeature {
        name: GROUP_VERSION,
        min: 0,
        max: 1,
        bootstrap: 1,
    },
    SupportedFeature {
        name: TRANSACTION_VERSION,
        min: 0,
        max: 2,
        bootstrap: 2,
    },
    SupportedFeature {
        name: ELR_VERSION,
        min: 0,
        max: 1,
        bootstrap: 1,
    },
];

/// Kafka's release names of the `metadata.version` levels (its `MetadataVersion`), for tools
/// that show or accept them (`gregor features --metadata 4.1`).
pub const METADATA_VERSIONS: &[(i16, &str)] = &[
    (1, "3.0-IV1"),
    (2, "3.1-IV0"),
    (3, "3.2-IV0"),
    (4, "3.3-IV0"),
    (5, "3.3-IV1"),
    (6, "3.3-IV2"),
    (7, "3.3-IV3"),
    (8, "3.4-IV0"),
    (9, "3.5-IV0"),
    (10, "3.5-IV1"),
    (11, "3.5-IV2"),
    (12, "3.6-IV0"),
    (13, "3.6-IV1"),
    (14, "3.6-IV2"),
    (15, "3.7-IV0"),
    (16, "3.7-IV1"),
    (17, "3.7-IV2"),
    (18, "3.7-IV3"),
    (19, "3.7-IV4"),
    (20, "3.8-IV0"),
    (21, "3.9-IV0"),
    (22, "4.0-IV0"),
    (23, "4.0-IV1"),
    (24, "4.0-IV2"),
    (25, "4.0-IV3"),
    (26, "4.1-IV0"),
    (27, "4.1-IV1"),
    (28, "4.2-IV0"),
    (29, "4.2-IV1"),
];

/// The release name of a `metadata.version` level.
pub fn metadata_version_name(level: i16) -> Option<&'static str> {
    METADATA_VERSIONS
        .iter()
        .find(|(l, _)| *l == level)
        .map(|(_, name)| *name)
}

/// The level of a release name: "4.1-IV1", or "4.1" for the newest level of that release.
pub fn metadata_version_level(name: &str) -> Option<i16> {
    METADATA_VERSIONS
        .iter()
        .rev()
        .find(|(_, n)| *n == name || n.split('-').next() == Some(name))
        .map(|(level, _)| *level)
}

/// How a level may move (UpdateFeatures `upgrade_type`; v0's `allow_downgrade` is a safe
/// downgrade).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpgradeType {
    Upgrade,
    SafeDowngrade,
    UnsafeDowngrade,
}

impl UpgradeType {
    pub fn from_code(code: i8) -> Option<UpgradeType> {
        match code {
            1 => Some(UpgradeType::Upgrade),
            2 => Some(UpgradeType::SafeDowngrade),
            3 => Some(UpgradeType::UnsafeDowngrade),
            _ => None,
        }
    }
}

/// One requested change; `upgrade_type` is `None` for a code gregor does not know.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeatureUpdate {
    pub name: String,
    pub level: i16,
    pub upgrade_type: Option<UpgradeType>,
}

/// The records that give a new cluster (or one formatted before features existed) the bootstrap
/// level of every feature; none once `metadata.version` is finalized, which it then always is
/// (it cannot go to 0), so a feature an operator disabled stays disabled. Level 0 needs no record.
pub fn bootstrap_records(image: &MetadataImage) -> Vec<MetadataRecord> {
    if image.features.contains_key(METADATA_VERSION) {
        return Vec::new();
    }
    SUPPORTED
        .iter()
        .filter(|f| f.bootstrap > 0)
        .map(|f| MetadataRecord::FeatureLevel {
            name: f.name.to_string(),
            level: f.bootstrap,
        })
        .collect()
}

/// Decides an UpdateFeatures request, all or nothing as Kafka's controller does: the first
/// refused update refuses the request (INVALID_UPDATE_VERSION naming it).
pub fn update_features(
    image: &MetadataImage,
    updates: &[FeatureUpdate],
    validate_only: bool,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let mut records = Vec::new();
    for update in updates {
        let refuse = |why: &str| ControllerError {
            code: ResponseError::InvalidUpdateVersion.code(),
            message: format!(
                "Invalid update version {} for feature {}. {why}",
                update.level, update.name
            ),
        };
        let Some(upgrade_type) = update.upgrade_type else {
            return Err(refuse(
                "The controller does not support the given upgrade type.",
            ));
        };
        if update.level < 0 {
            return Err(refuse("A feature version cannot be less than 0."));
        }
        let Some(supported) = SUPPORTED.iter().find(|f| f.name == update.name) else {
            return Err(refuse("The controller does not support the given feature."));
        };
        if update.level < supported.min || update.level > supported.max {
            return Err(refuse(&format!(
                "The controller only supports versions {}-{}.",
                supported.min, supported.max
            )));
        }
        let current = image.feature_level(&update.name);
        if update.level < current && upgrade_type == UpgradeType::Upgrade {
            return Err(refuse(
                "Can't downgrade the version of this feature without setting the upgrade type \
                 to either safe or unsafe downgrade.",
            ));
        }
        if update.level > current && upgrade_type != UpgradeType::Upgrade {
            return Err(refuse("Can't downgrade to a newer version."));
        }
        if update.level != current {
            records.push(MetadataRecord::FeatureLevel {
                name: update.name.clone(),
                level: update.level,
            });
        }
    }
    if validate_only {
        records.clear();
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_with(records: &[MetadataRecord]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for r in records {
            image.apply(r);
        }
        image
    }

    fn update(name: &str, level: i16, upgrade_type: UpgradeType) -> FeatureUpdate {
        FeatureUpdate {
            name: name.into(),
            level,
            upgrade_type: Some(upgrade_type),
        }
    }

    #[test]
    fn a_new_cluster_starts_at_the_bootstrap_levels() {
        let image = image_with(&bootstrap_records(&MetadataImage::default()));
        assert_eq!(image.feature_level(METADATA_VERSION), 27);
        assert_eq!(image.feature_level(GROUP_VERSION), 1);
        assert_eq!(image.feature_level(TRANSACTION_VERSION), 2);
        assert!(bootstrap_records(&image).is_empty(), "written once");
        let disabled = [MetadataRecord::FeatureLevel {
            name: GROUP_VERSION.into(),
            level: 0,
        }];
        let mut image = image;
        image.apply(&disabled[0]);
        assert!(
            bootstrap_records(&image).is_empty(),
            "a disabled feature stays so"
        );
        assert_eq!(metadata_version_name(27), Some("4.1-IV1"));
        assert_eq!(metadata_version_level("4.0"), Some(25));
        assert_eq!(metadata_version_level("3.3-IV3"), Some(7));
        assert_eq!(metadata_version_level("5.0"), None);
    }

    #[test]
    fn levels_move_within_the_supported_range_in_the_stated_direction() {
        use UpgradeType::*;
        let image = image_with(&bootstrap_records(&MetadataImage::default()));
        let invalid = ResponseError::InvalidUpdateVersion.code();
        let refused =
            |updates: &[FeatureUpdate]| update_features(&image, updates, false).unwrap_err();

        let down = update_features(&image, &[update(GROUP_VERSION, 0, SafeDowngrade)], false);
        assert_eq!(
            down.unwrap(),
            vec![MetadataRecord::FeatureLevel {
                name: GROUP_VERSION.into(),
                level: 0
            }]
        );
        let e = refused(&[update(GROUP_VERSION, 0, Upgrade)]);
        assert_eq!(e.code, invalid);
        assert!(
            e.message.contains("without setting the upgrade type"),
            "{e}"
        );
        assert_eq!(refused(&[update(GROUP_VERSION, 2, Upgrade)]).code, invalid);
        assert_eq!(
            refused(&[update(METADATA_VERSION, 26, UnsafeDowngrade)]).code,
            invalid
        );
        assert_eq!(
            refused(&[update("no.such.feature", 1, Upgrade)]).code,
            invalid
        );
        assert_eq!(
            refused(&[update(TRANSACTION_VERSION, 3, Upgrade)]).code,
            invalid
        );
        // Transaction version 2 may go back to 0: clients then return to the classic protocol.
        let classic = update_features(
            &image,
            &[update(TRANSACTION_VERSION, 0, SafeDowngrade)],
            false,
        );
        assert_eq!(classic.unwrap().len(), 1);
        // All or nothing: a good update beside a bad one is not applied.
        let e = refused(&[
            update(GROUP_VERSION, 0, SafeDowngrade),
            update(KRAFT_VERSION, 1, Upgrade),
        ]);
        assert!(e.message.contains("kraft.version"), "{e}");
        // Validation alone writes nothing; the current level is no change.
        let down = [update(GROUP_VERSION, 0, SafeDowngrade)];
        assert!(update_features(&image, &down, true).unwrap().is_empty());
        let same = [update(GROUP_VERSION, 1, Upgrade)];
        assert!(update_features(&image, &same, false).unwrap().is_empty());
        let unknown_type = FeatureUpdate {
            upgrade_type: None,
            ..update(GROUP_VERSION, 0, SafeDowngrade)
        };
        assert_eq!(refused(&[unknown_type]).code, invalid);
    }
}
