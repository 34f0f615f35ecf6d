//! `gregor features describe|upgrade|downgrade|disable`: the cluster's feature levels (KIP-584),
//! like kafka-features.sh. librdkafka has no call for them, so ApiVersions (which carries the
//! levels) and UpdateFeatures go over plain TCP (PLAINTEXT listeners only).

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, Subcommand};
use gregor_metadata::features::{metadata_version_level, metadata_version_name};
use gregor_protocol::kafka::messages::update_features_request::FeatureUpdateKey;
use gregor_protocol::kafka::messages::{
    ApiVersionsRequest, ApiVersionsResponse, UpdateFeaturesRequest, UpdateFeaturesResponse,
};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::ApiKey;

use super::common::{a_broker, emit, out};
use super::wire;
use super::ClientArgs;

const EXAMPLES: &str = "Examples:
  gregor features describe
  gregor features downgrade --feature group.version=0
  gregor features upgrade --feature group.version=1 --dry-run
  gregor features upgrade --metadata 4.1
  gregor features disable --feature group.version

Features are read and changed over a plain TCP connection (librdkafka has no call for them):
PLAINTEXT listeners only.";

const METADATA_VERSION: &str = "metadata.version";

#[derive(ClapArgs, Debug)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Each feature's supported range and finalized level.
    Describe,
    /// Raise finalized levels.
    Upgrade {
        #[command(flatten)]
        change: Change,
        /// The metadata.version to upgrade to, as a release ("4.1") or level name ("4.1-IV1").
        #[arg(long, value_name = "VERSION")]
        metadata: Option<String>,
    },
    /// Lower finalized levels.
    Downgrade {
        #[command(flatten)]
        change: Change,
        /// Allow a downgrade that may lose metadata.
        #[arg(long = "unsafe")]
        unsafe_downgrade: bool,
    },
    /// Set features to level 0.
    Disable {
        /// A feature name; repeatable.
        #[arg(long = "feature", value_name = "NAME", required = true)]
        features: Vec<String>,
        #[arg(long = "unsafe")]
        unsafe_downgrade: bool,
        /// Validate only; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(ClapArgs, Debug)]
pub struct Change {
    /// NAME=LEVEL; repeatable.
    #[arg(long = "feature", value_name = "NAME=LEVEL")]
    pub features: Vec<String>,
    /// Validate only; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (host, port) = a_broker(&args.client)?;
    let address = (host.as_str(), port);
    let timeout = args.client.timeout();
    // UpgradeType: 1 upgrade, 2 safe downgrade, 3 unsafe downgrade.
    let (updates, upgrade_type, dry_run) = match args.action {
        Action::Describe => return describe(address, timeout),
        Action::Upgrade { change, metadata } => {
            let mut updates = parse_levels(&change.features)?;
            if let Some(version) = metadata {
                let level = metadata_version_level(&version)
                    .with_context(|| format!("unknown metadata.version {version}"))?;
                updates.push((METADATA_VERSION.to_string(), level));
            }
            (updates, 1, change.dry_run)
        }
        Action::Downgrade {
            change,
            unsafe_downgrade,
        } => (
            parse_levels(&change.features)?,
            if unsafe_downgrade { 3 } else { 2 },
            change.dry_run,
        ),
        Action::Disable {
            features,
            unsafe_downgrade,
            dry_run,
        } => (
            features.into_iter().map(|f| (f, 0)).collect(),
            if unsafe_downgrade { 3 } else { 2 },
            dry_run,
        ),
    };
    if updates.is_empty() {
        bail!("name at least one --feature");
    }
    let request = UpdateFeaturesRequest::default()
        .with_timeout_ms(timeout.as_millis().try_into().unwrap_or(i32::MAX))
        .with_validate_only(dry_run)
        .with_feature_updates(
            updates
                .iter()
                .map(|(name, level)| {
                    FeatureUpdateKey::default()
                        .with_feature(StrBytes::from_string(name.clone()))
                        .with_max_version_level(*level)
                        .with_upgrade_type(upgrade_type)
                })
                .collect(),
        );
    let response: UpdateFeaturesResponse =
        wire::call(address, ApiKey::UpdateFeatures, 1, &request, timeout)?;
    let verb = match (upgrade_type, dry_run) {
        (1, false) => "was upgraded to",
        (1, true) => "can be upgraded to",
        (_, false) => "was downgraded to",
        (_, true) => "can be downgraded to",
    };
    let mut text = String::new();
    for (name, level) in &updates {
        let shown = level_name(name, *level);
        match response.results.iter().find(|r| r.feature.as_str() == name) {
            Some(r) if r.error_code == 0 => out!(text, "{name} {verb} {shown}."),
            Some(r) => out!(
                text,
                "Could not change {name} to {shown}. {}",
                r.error_message.as_deref().unwrap_or("")
            ),
            None if response.error_code == 0 => out!(text, "{name} {verb} {shown}."),
            None => out!(
                text,
                "Could not change {name} to {shown}. {}",
                response.error_message.as_deref().unwrap_or("")
            ),
        }
    }
    emit(&text)?;
    if response.error_code != 0 {
        bail!("the update was refused; no feature changed");
    }
    Ok(())
}

/// kafka-features.sh's lines: one per supported feature, with its finalized level.
fn describe(address: (&str, u16), timeout: std::time::Duration) -> anyhow::Result<()> {
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("gregor-cli"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    let response: ApiVersionsResponse =
        wire::call(address, ApiKey::ApiVersions, 3, &request, timeout)?;
    if response.error_code != 0 {
        bail!("ApiVersions error code {}", response.error_code);
    }
    let mut supported = response.supported_features;
    supported.sort_by(|a, b| a.name.cmp(&b.name));
    let mut text = String::new();
    for f in &supported {
        let name = f.name.as_str();
        let finalized = response
            .finalized_features
            .iter()
            .find(|x| x.name.as_str() == name)
            .map_or(0, |x| x.max_version_level);
        out!(
            text,
            "Feature: {name}\tSupportedMinVersion: {}\tSupportedMaxVersion: {}\t\
             FinalizedVersionLevel: {}\tEpoch: {}",
            level_name(name, f.min_version),
            level_name(name, f.max_version),
            level_name(name, finalized),
            response.finalized_features_epoch
        );
    }
    emit(&text)
}

/// A level as kafka-features.sh shows it: metadata.version by its release name.
fn level_name(feature: &str, level: i16) -> String {
    match (feature, metadata_version_name(level)) {
        (METADATA_VERSION, Some(name)) => name.to_string(),
        _ => level.to_string(),
    }
}

fn parse_levels(pairs: &[String]) -> anyhow::Result<Vec<(String, i16)>> {
    pairs
        .iter()
        .map(|pair| {
            let (name, level) = pair
                .split_once('=')
                .with_context(|| format!("--feature {pair}: expected NAME=LEVEL"))?;
            let level = level
                .trim()
                .parse()
                .with_context(|| format!("--feature {pair}: the level must be a number"))?;
            Ok((name.trim().to_string(), level))
        })
        .collect()
}
