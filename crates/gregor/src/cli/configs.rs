//! `gregor configs`: describe and alter topic, broker and group configs, like kafka-configs.sh.

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use rdkafka::bindings::rd_kafka_ResourceType_t as ResourceType;

use super::common::{admin, emit, metadata, table, Output};
use super::librdkafka as ffi;
use super::ClientArgs;

const EXAMPLES: &str = "Examples:
  gregor configs --describe --entity-type topics --entity-name orders
  gregor configs --describe --entity-type brokers --entity-name 1 --output json
  gregor configs --alter --entity-type topics --entity-name orders --add-config retention.ms=86400000,cleanup.policy=compact
  gregor configs --alter --entity-type topics --entity-name orders --delete-config retention.ms
  gregor configs --alter --entity-type brokers --entity-name 1 --add-config log.retention.ms=3600000
  gregor configs --alter --entity-type groups --entity-name payments --add-config consumer.session.timeout.ms=50000
  gregor configs --describe --entity-type groups --entity-name payments

Lists in --add-config values go in brackets: --add-config 'cleanup.policy=[compact,delete]'";

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityType {
    Topics,
    Brokers,
    Groups,
}

#[derive(ClapArgs, Debug)]
#[command(after_help = EXAMPLES)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["describe", "alter"])))]
pub struct Args {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Show the configs of an entity: name, value and source.
    #[arg(long)]
    pub describe: bool,
    /// Change configs (IncrementalAlterConfigs): --add-config and/or --delete-config.
    #[arg(long)]
    pub alter: bool,
    /// What kind of entity.
    #[arg(long, value_enum)]
    pub entity_type: Option<EntityType>,
    /// The topic name, broker id or group id.
    #[arg(long)]
    pub entity_name: Option<String>,
    /// Shorthand for --entity-type topics --entity-name TOPIC.
    #[arg(long, conflicts_with_all = ["entity_type", "entity_name", "broker"])]
    pub topic: Option<String>,
    /// Shorthand for --entity-type brokers --entity-name ID.
    #[arg(long, conflicts_with_all = ["entity_type", "entity_name"])]
    pub broker: Option<i32>,
    /// Configs to set: k1=v1,k2=[v2,v3],...
    #[arg(long, value_name = "K=V,...")]
    pub add_config: Vec<String>,
    /// Configs to remove (back to their default): k1,k2,...
    #[arg(long, value_name = "K,...")]
    pub delete_config: Vec<String>,
    /// --describe output format.
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let (kind, name) = entity(&args)?;
    let admin = admin(&args.client)?;
    let md = metadata(&admin, &args.client)?;
    let timeout = args.client.timeout();
    // librdkafka sends a broker resource to that broker: an unknown id would only time out.
    if kind == EntityType::Brokers {
        let id = broker_id(&name)?;
        if !md.brokers().iter().any(|b| b.id() == id) {
            bail!("broker {id} is not in the cluster");
        }
    }
    let restype = match kind {
        EntityType::Topics => ResourceType::RD_KAFKA_RESOURCE_TOPIC,
        EntityType::Brokers => ResourceType::RD_KAFKA_RESOURCE_BROKER,
        EntityType::Groups => ResourceType::RD_KAFKA_RESOURCE_GROUP,
    };
    if args.describe {
        let mut entries = ffi::describe_configs(&admin, restype, &name, timeout)
            .with_context(|| format!("cannot describe {} {name}", kind_name(kind)))?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let value = |e: &ffi::ConfigEntry| {
            if e.sensitive {
                None
            } else {
                e.value.clone()
            }
        };
        match args.output {
            Output::Json => {
                let list: Vec<serde_json::Value> = entries
                    .iter()
                    .map(|e| {
                        serde_json::json!({
                            "name": e.name,
                            "value": value(e),
                            "source": e.source,
                            "read_only": e.read_only,
                            "sensitive": e.sensitive,
                        })
                    })
                    .collect();
                let json = serde_json::json!({
                    "entity_type": kind_name(kind),
                    "entity_name": name,
                    "configs": list,
                });
                emit(&format!("{json}\n"))?;
            }
            Output::Table => {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            if e.sensitive {
                                "(sensitive)".into()
                            } else {
                                e.value.clone().unwrap_or_else(|| "null".into())
                            },
                            e.source.to_string(),
                        ]
                    })
                    .collect();
                emit(&table(&["NAME", "VALUE", "SOURCE"], &rows))?;
            }
        }
        return Ok(());
    }

    // --alter
    let adds = args
        .add_config
        .iter()
        .map(|s| split_pairs(s))
        .collect::<anyhow::Result<Vec<_>>>()?
        .concat();
    let deletes: Vec<&str> = args
        .delete_config
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if adds.is_empty() && deletes.is_empty() {
        bail!("--alter needs --add-config and/or --delete-config");
    }
    let mut ops: Vec<ffi::Op> = adds
        .iter()
        .map(|(k, v)| ffi::Op::Set(k.as_str(), v.as_str()))
        .collect();
    ops.extend(deletes.iter().map(|k| ffi::Op::Delete(k)));
    ffi::incremental_alter_configs(&admin, restype, &name, &ops, timeout)
        .with_context(|| format!("cannot alter {} {name}", kind_name(kind)))?;
    println!("Completed updating config for {} {name}.", kind_name(kind));
    Ok(())
}

fn entity(args: &Args) -> anyhow::Result<(EntityType, String)> {
    if let Some(t) = &args.topic {
        return Ok((EntityType::Topics, t.clone()));
    }
    if let Some(b) = args.broker {
        return Ok((EntityType::Brokers, b.to_string()));
    }
    let kind = args
        .entity_type
        .context("--entity-type (topics, brokers, groups) is required")?;
    let name = args
        .entity_name
        .clone()
        .context("--entity-name is required")?;
    Ok((kind, name))
}

fn broker_id(name: &str) -> anyhow::Result<i32> {
    name.parse()
        .with_context(|| format!("--entity-name {name}: a broker is named by its numeric id"))
}

fn kind_name(kind: EntityType) -> &'static str {
    match kind {
        EntityType::Topics => "topic",
        EntityType::Brokers => "broker",
        EntityType::Groups => "group",
    }
}

/// `k1=v1,k2=[a,b]` → pairs; a bracketed value keeps its commas (without the brackets).
fn split_pairs(s: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut items = vec![];
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    items.push(cur);
    let mut out = vec![];
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("--add-config {item}: expected KEY=VALUE"))?;
        let v = v.trim();
        let v = v
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(v);
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::split_pairs;

    #[test]
    fn pairs_with_lists() {
        let p = split_pairs("a=1, b=[x,y],c=z=w").unwrap();
        assert_eq!(
            p,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x,y".into()),
                ("c".into(), "z=w".into())
            ]
        );
        assert!(split_pairs("novalue").is_err());
    }
}
