//! Topic administration through rdkafka's AdminClient.

mod common;

use std::time::Duration;

use common::{admin_opts, block_on, wait_for_partitions, Gregor};
use rdkafka::admin::{ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;

fn create_one(g: &Gregor, topic: NewTopic<'_>) -> Result<String, (String, RDKafkaErrorCode)> {
    let admin = g.admin();
    let mut results =
        block_on(admin.create_topics(&[topic], &admin_opts())).expect("create_topics request");
    assert_eq!(results.len(), 1);
    results.pop().unwrap()
}

fn create_err(g: &Gregor, topic: NewTopic<'_>) -> RDKafkaErrorCode {
    let name = topic.name.to_string();
    match create_one(g, topic) {
        Ok(t) => panic!("creating {t} should have failed"),
        Err((t, code)) => {
            assert_eq!(t, name);
            code
        }
    }
}

fn topic_names(g: &Gregor) -> Vec<(String, usize)> {
    let md = g
        .admin()
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect()
}

#[test]
fn topic_lifecycle_and_errors() {
    let g = Gregor::start(&[]);
    let admin = g.admin();

    // Create with 3 partitions: Metadata shows them, each led by node 1.
    let created = create_one(&g, NewTopic::new("orders", 3, TopicReplication::Fixed(1)));
    assert_eq!(created, Ok("orders".to_string()));
    wait_for_partitions(&admin, "orders", 3);
    let md = admin
        .inner()
        .fetch_metadata(Some("orders"), Duration::from_secs(10))
        .unwrap();
    let t = &md.topics()[0];
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort();
    assert_eq!(ids, vec![0, 1, 2]);
    for p in t.partitions() {
        assert_eq!(p.leader(), 1, "partition {} leader", p.id());
        assert_eq!(p.replicas(), &[1]);
        assert_eq!(p.isr(), &[1]);
    }
    assert_eq!(md.brokers().len(), 1);
    assert_eq!(md.brokers()[0].id(), 1);

    // Errors, each with its Kafka code.
    assert_eq!(
        create_err(&g, NewTopic::new("orders", 3, TopicReplication::Fixed(1))),
        RDKafkaErrorCode::TopicAlreadyExists
    );
    assert_eq!(
        create_err(&g, NewTopic::new("bad/name", 1, TopicReplication::Fixed(1))),
        RDKafkaErrorCode::InvalidTopic
    );
    assert_eq!(
        create_err(&g, NewTopic::new("..", 1, TopicReplication::Fixed(1))),
        RDKafkaErrorCode::InvalidTopic
    );
    let long = "x".repeat(250);
    assert_eq!(
        create_err(&g, NewTopic::new(&long, 1, TopicReplication::Fixed(1))),
        RDKafkaErrorCode::InvalidTopic
    );
    assert_eq!(
        create_err(&g, NewTopic::new("zero", 0, TopicReplication::Fixed(1))),
        RDKafkaErrorCode::InvalidPartitions
    );
    assert_eq!(
        create_err(&g, NewTopic::new("rf3", 1, TopicReplication::Fixed(3))),
        RDKafkaErrorCode::InvalidReplicationFactor
    );
    assert_eq!(
        create_err(
            &g,
            NewTopic::new("badcfg", 1, TopicReplication::Fixed(1)).set("foo.bar", "1")
        ),
        RDKafkaErrorCode::InvalidConfig
    );
    assert_eq!(
        create_err(
            &g,
            NewTopic::new("badval", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon")
        ),
        RDKafkaErrorCode::InvalidConfig
    );
    // None of the failed creations left a topic behind.
    let names: Vec<String> = topic_names(&g).into_iter().map(|(n, _)| n).collect();
    for bad in ["bad/name", "zero", "rf3", "badcfg", "badval"] {
        assert!(!names.contains(&bad.to_string()), "{bad} exists: {names:?}");
    }

    // CreatePartitions 3 -> 5.
    let res = block_on(admin.create_partitions(&[NewPartitions::new("orders", 5)], &admin_opts()))
        .expect("create_partitions request");
    assert_eq!(res, vec![Ok("orders".to_string())]);
    wait_for_partitions(&admin, "orders", 5);
    // Shrinking is refused.
    let res = block_on(admin.create_partitions(&[NewPartitions::new("orders", 2)], &admin_opts()))
        .expect("create_partitions request");
    assert_eq!(
        res,
        vec![Err((
            "orders".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );

    // DescribeConfigs on the topic: defaults.
    let res =
        block_on(admin.describe_configs(&[ResourceSpecifier::Topic("orders")], &admin_opts()))
            .expect("describe_configs request");
    assert_eq!(res.len(), 1);
    let resource = res[0].as_ref().expect("topic configs");
    let retention = resource.get("retention.ms").expect("retention.ms listed");
    assert_eq!(retention.value.as_deref(), Some("604800000"));
    assert_eq!(retention.source, ConfigSource::Default);
    assert!(retention.is_default);
    assert!(resource.get("cleanup.policy").is_some());

    // DescribeConfigs on broker 1: log.dirs was set on the command line.
    let res = block_on(admin.describe_configs(&[ResourceSpecifier::Broker(1)], &admin_opts()))
        .expect("describe_configs request");
    let resource = res[0].as_ref().expect("broker configs");
    let dirs = resource.get("log.dirs").expect("log.dirs listed");
    assert_eq!(dirs.value.as_deref(), Some(g.data_dir().to_str().unwrap()));
    assert_eq!(dirs.source, ConfigSource::StaticBroker);
    let np = resource
        .get("num.partitions")
        .expect("num.partitions listed");
    assert_eq!(np.value.as_deref(), Some("1"));
    assert_eq!(np.source, ConfigSource::Default);

    // A topic created with a config override reports it as a dynamic topic config.
    let created = create_one(
        &g,
        NewTopic::new("short", 1, TopicReplication::Fixed(1)).set("retention.ms", "1000"),
    );
    assert_eq!(created, Ok("short".to_string()));
    let res = block_on(admin.describe_configs(&[ResourceSpecifier::Topic("short")], &admin_opts()))
        .unwrap();
    let retention = res[0].as_ref().unwrap().get("retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("1000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);

    // DescribeConfigs of an unknown topic. rdkafka 0.39 drops the per-resource error code
    // (DescribeConfigsFuture never reads rd_kafka_ConfigResource_error), so all we can see is
    // that no entries come back.
    let res = block_on(admin.describe_configs(&[ResourceSpecifier::Topic("nope")], &admin_opts()))
        .unwrap();
    match &res[0] {
        Ok(r) => assert!(r.entries.is_empty(), "{res:?}"),
        Err(code) => assert_eq!(*code, RDKafkaErrorCode::UnknownTopicOrPartition),
    }

    // Delete: Metadata no longer lists it.
    let res = block_on(admin.delete_topics(&["orders"], &admin_opts())).expect("delete request");
    assert_eq!(res, vec![Ok("orders".to_string())]);
    let names: Vec<String> = topic_names(&g).into_iter().map(|(n, _)| n).collect();
    assert!(!names.contains(&"orders".to_string()), "{names:?}");
    assert!(names.contains(&"short".to_string()), "{names:?}");

    // Delete an unknown topic.
    let res = block_on(admin.delete_topics(&["orders"], &admin_opts())).expect("delete request");
    assert_eq!(
        res,
        vec![Err((
            "orders".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );

    // The name can be reused, starting empty.
    let created = create_one(&g, NewTopic::new("orders", 2, TopicReplication::Fixed(1)));
    assert_eq!(created, Ok("orders".to_string()));
    wait_for_partitions(&admin, "orders", 2);
    let (low, high) = g
        .consumer(&[])
        .fetch_watermarks("orders", 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, high), (0, 0));
}

#[test]
fn topics_survive_restart() {
    let mut g = Gregor::start(&[]);
    g.create_topic("kept", 3);
    g.create_topic("gone", 1);
    let res = block_on(g.admin().delete_topics(&["gone"], &admin_opts())).unwrap();
    assert_eq!(res, vec![Ok("gone".to_string())]);
    g.restart();
    let topics = topic_names(&g);
    assert!(topics.contains(&("kept".to_string(), 3)), "{topics:?}");
    assert!(!topics.iter().any(|(n, _)| n == "gone"), "{topics:?}");
}
