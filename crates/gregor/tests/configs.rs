//! Dynamic configs (AlterConfigs, DescribeConfigs) and DeleteRecords through rdkafka's
//! AdminClient, and their survival across a crash.

mod common;

use std::time::{Duration, Instant};

use common::{admin_opts, block_on, send_ok, Gregor, Rec};
use rdkafka::admin::{AlterConfig, ConfigSource, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// `(value, source as its Debug name, read-only)`: rdkafka's ConfigSource is neither Clone nor Copy.
fn config_of(
    g: &Gregor,
    spec: ResourceSpecifier<'_>,
    name: &str,
) -> (Option<String>, String, bool) {
    let res =
        block_on(g.admin().describe_configs(&[spec], &admin_opts())).expect("describe_configs");
    let resource = res[0].as_ref().expect("resource configs");
    let entry = resource
        .get(name)
        .unwrap_or_else(|| panic!("{name} not described"));
    (
        entry.value.clone(),
        format!("{:?}", entry.source),
        entry.is_read_only,
    )
}

fn src(s: ConfigSource) -> String {
    format!("{s:?}")
}

/// rdkafka 0.39 drops per-resource errors of AlterConfigs (AlterConfigsFuture pushes `Ok` for
/// every resource), so a refusal is seen only as configs left unchanged.
fn alter(g: &Gregor, config: AlterConfig<'_>) -> Result<(), RDKafkaErrorCode> {
    let res = block_on(g.admin().alter_configs(&[config], &admin_opts())).expect("alter_configs");
    res.into_iter()
        .next()
        .unwrap()
        .map(drop)
        .map_err(|(_, code)| code)
}

fn watermarks(g: &Gregor, topic: &str) -> (i64, i64) {
    g.consumer(&[])
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks")
}

#[test]
fn alter_describe_delete_records_and_restart() {
    let mut g = Gregor::start(&[]);
    g.create_topic("cfg", 1);

    // AlterConfigs on the topic: the whole set of overrides is replaced.
    alter(
        &g,
        AlterConfig::new(ResourceSpecifier::Topic("cfg")).set("retention.ms", "3600000"),
    )
    .unwrap();
    assert_eq!(
        config_of(&g, ResourceSpecifier::Topic("cfg"), "retention.ms"),
        (
            Some("3600000".into()),
            src(ConfigSource::DynamicTopic),
            false
        )
    );
    alter(
        &g,
        AlterConfig::new(ResourceSpecifier::Topic("cfg")).set("segment.ms", "100000"),
    )
    .unwrap();
    assert_eq!(
        config_of(&g, ResourceSpecifier::Topic("cfg"), "retention.ms"),
        (Some("604800000".into()), src(ConfigSource::Default), false)
    );
    // Refused (INVALID_CONFIG): the whole resource is left as it was.
    let _ = alter(
        &g,
        AlterConfig::new(ResourceSpecifier::Topic("cfg"))
            .set("retention.ms", "1")
            .set("min.cleanable.dirty.ratio", "-1"),
    );
    assert_eq!(
        config_of(&g, ResourceSpecifier::Topic("cfg"), "segment.ms"),
        (
            Some("100000".into()),
            src(ConfigSource::DynamicTopic),
            false
        )
    );
    assert_eq!(
        config_of(
            &g,
            ResourceSpecifier::Topic("cfg"),
            "min.cleanable.dirty.ratio"
        ),
        (Some("0.5".into()), src(ConfigSource::Default), false)
    );

    // A dynamic config of broker 1 is the topic's effective value where it has no override.
    alter(
        &g,
        AlterConfig::new(ResourceSpecifier::Broker(1)).set("log.retention.ms", "7777"),
    )
    .unwrap();
    assert_eq!(
        config_of(&g, ResourceSpecifier::Topic("cfg"), "retention.ms"),
        (Some("7777".into()), src(ConfigSource::DynamicBroker), false)
    );
    assert_eq!(
        config_of(&g, ResourceSpecifier::Broker(1), "log.retention.ms"),
        (Some("7777".into()), src(ConfigSource::DynamicBroker), false)
    );
    let (_, _, read_only) = config_of(&g, ResourceSpecifier::Broker(1), "log.dirs");
    assert!(read_only);
    let _ = alter(
        &g,
        AlterConfig::new(ResourceSpecifier::Broker(1)).set("log.dirs", "/tmp/x"),
    );
    assert_eq!(
        config_of(&g, ResourceSpecifier::Broker(1), "log.retention.ms"),
        (Some("7777".into()), src(ConfigSource::DynamicBroker), false)
    );

    // DeleteRecords moves the low watermark; consumers from the beginning start there.
    let producer = g.producer(&[]);
    let recs: Vec<Rec> = (0..10).map(|i| Rec::value(format!("m{i}"))).collect();
    send_ok(&producer, "cfg", &recs);
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("cfg", 0, Offset::Offset(6))
        .unwrap();
    let deleted =
        block_on(g.admin().delete_records(&offsets, &admin_opts())).expect("delete_records");
    let element = deleted.find_partition("cfg", 0).expect("partition result");
    assert_eq!(element.error(), Ok(()));
    assert_eq!(element.offset(), Offset::Offset(6));
    assert_eq!(watermarks(&g, "cfg"), (6, 10));
    let got = g.consume("cfg", &[0], 4);
    assert_eq!(
        got.iter().map(rdkafka::Message::offset).collect::<Vec<_>>(),
        vec![6, 7, 8, 9]
    );

    let mut beyond = TopicPartitionList::new();
    beyond
        .add_partition_offset("cfg", 0, Offset::Offset(11))
        .unwrap();
    let refused =
        block_on(g.admin().delete_records(&beyond, &admin_opts())).expect("delete_records");
    assert!(refused.find_partition("cfg", 0).unwrap().error().is_err());

    // A crash keeps the configs (metadata log) and the low watermark (checkpoint).
    g.restart();
    assert_eq!(
        config_of(&g, ResourceSpecifier::Topic("cfg"), "retention.ms"),
        (Some("7777".into()), src(ConfigSource::DynamicBroker), false)
    );
    assert_eq!(
        config_of(&g, ResourceSpecifier::Topic("cfg"), "segment.ms"),
        (
            Some("100000".into()),
            src(ConfigSource::DynamicTopic),
            false
        )
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let w = g
            .consumer(&[])
            .fetch_watermarks("cfg", 0, Duration::from_secs(5));
        if w.as_ref().ok() == Some(&(6, 10)) {
            break;
        }
        assert!(Instant::now() < deadline, "watermarks after restart: {w:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
