//! Topic-level configs: names, defaults, the broker config each defaults to, and validation.
//! A topic config without an override takes the broker's value of its synonym, else the default.

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConfigKind {
    /// A 64-bit integer no smaller than the bound.
    Long { min: i64 },
    /// A 32-bit integer no smaller than the bound.
    Int { min: i32 },
    /// One of the listed strings.
    Choice(&'static [&'static str]),
    /// A comma-separated, non-empty list drawn from the listed strings.
    ChoiceList(&'static [&'static str]),
    /// Free text (paths, listeners), checked where it is used.
    Text,
}

#[derive(Clone, Copy, Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    /// The broker config that supplies the default (`log.retention.ms` for `retention.ms`).
    pub broker_synonym: &'static str,
    pub default: &'static str,
    pub kind: ConfigKind,
}

const fn def(
    name: &'static str,
    broker_synonym: &'static str,
    default: &'static str,
    kind: ConfigKind,
) -> ConfigDef {
    ConfigDef {
        name,
        broker_synonym,
        default,
        kind,
    }
}

const MAX: &str = "9223372036854775807";

/// The topic configs gregor knows, with Kafka's defaults.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def(
        "cleanup.policy",
        "log.cleanup.policy",
        "delete",
        ConfigKind::ChoiceList(&["delete", "compact"]),
    ),
    def(
        "compression.type",
        "compression.type",
        "producer",
        ConfigKind::Choice(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
    ),
    def(
        "flush.messages",
        "log.flush.interval.messages",
        MAX,
        ConfigKind::Long { min: 1 },
    ),
    def(
        "flush.ms",
        "log.flush.interval.ms",
        MAX,
        ConfigKind::Long { min: 0 },
    ),
    def(
        "index.interval.bytes",
        "log.index.interval.bytes",
        "4096",
        ConfigKind::Int { min: 0 },
    ),
    def(
        "max.message.bytes",
        "message.max.bytes",
        "1048588",
        ConfigKind::Int { min: 0 },
    ),
    def(
        "message.timestamp.type",
        "log.message.timestamp.type",
        "CreateTime",
        ConfigKind::Choice(&["CreateTime", "LogAppendTime"]),
    ),
    def(
        "min.insync.replicas",
        "min.insync.replicas",
        "1",
        ConfigKind::Int { min: 1 },
    ),
    def(
        "retention.bytes",
        "log.retention.bytes",
        "-1",
        ConfigKind::Long { min: -1 },
    ),
    def(
        "retention.ms",
        "log.retention.ms",
        "604800000",
        ConfigKind::Long { min: -1 },
    ),
    def(
        "segment.bytes",
        "log.segment.bytes",
        "1073741824",
        ConfigKind::Int { min: 14 },
    ),
    def(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        "10485760",
        ConfigKind::Int { min: 4 },
    ),
    def(
        "segment.ms",
        "log.roll.ms",
        "604800000",
        ConfigKind::Long { min: 1 },
    ),
];

pub fn topic_config(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

impl ConfigDef {
    /// Checks a value against the definition; the error names the key, as Kafka's does.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        let invalid = |why: &str| {
            Err(format!(
                "Invalid value {value} for configuration {}: {why}",
                self.name
            ))
        };
        match self.kind {
            ConfigKind::Text => Ok(()),
            ConfigKind::Long { min } => match value.trim().parse::<i64>() {
                Ok(v) if v >= min => Ok(()),
                Ok(_) => invalid(&format!("Value must be at least {min}")),
                Err(_) => invalid("Not a number of type LONG"),
            },
            ConfigKind::Int { min } => match value.trim().parse::<i32>() {
                Ok(v) if v >= min => Ok(()),
                Ok(_) => invalid(&format!("Value must be at least {min}")),
                Err(_) => invalid("Not a number of type INT"),
            },
            ConfigKind::Choice(options) => {
                if options.contains(&value.trim()) {
                    Ok(())
                } else {
                    invalid(&format!("String must be one of: {}", options.join(", ")))
                }
            }
            ConfigKind::ChoiceList(options) => {
                let items: Vec<&str> = value.split(',').map(str::trim).collect();
                if !items.is_empty() && items.iter().all(|i| options.contains(i)) {
                    Ok(())
                } else {
                    invalid(&format!("List items must be among: {}", options.join(", ")))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_the_key() {
        for d in TOPIC_CONFIGS {
            d.validate(d.default).unwrap();
        }
        let err = topic_config("retention.ms")
            .unwrap()
            .validate("soon")
            .unwrap_err();
        assert!(err.contains("retention.ms"), "{err}");
        assert!(topic_config("cleanup.policy")
            .unwrap()
            .validate("compact,delete")
            .is_ok());
        assert!(topic_config("cleanup.policy")
            .unwrap()
            .validate("forever")
            .is_err());
    }
}
