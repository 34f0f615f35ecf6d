//! `gregor topics`, `gregor configs` and `gregor cluster`: the real binary against a harness
//! broker, checking both what it prints and what it did (through rdkafka).

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{admin_opts, block_on, topic_name, wait_for_partitions, Gregor};
use rdkafka::admin::ResourceSpecifier;

fn gregor(g: &Gregor, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args(args)
        .arg("--bootstrap-server")
        .arg(g.bootstrap())
        .arg("--timeout-secs")
        .arg("20")
        .output()
        .expect("run gregor")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Succeeds and returns stdout.
fn ok(g: &Gregor, args: &[&str]) -> String {
    let o = gregor(g, args);
    assert!(
        o.status.success(),
        "gregor {args:?} failed: {}\nstdout: {}",
        stderr(&o),
        stdout(&o)
    );
    stdout(&o)
}

/// Fails with exit code 1 and a one-line error; returns that line.
fn fails(g: &Gregor, args: &[&str]) -> String {
    let o = gregor(g, args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "gregor {args:?} should fail; stdout: {}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error: {err:?}");
    err.trim_end().to_string()
}

fn partitions_of(g: &Gregor, topic: &str) -> Option<usize> {
    let md = g
        .admin()
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len())
}

fn topic_config(g: &Gregor, topic: &str, name: &str) -> (Option<String>, String) {
    let res = block_on(
        g.admin()
            .describe_configs(&[ResourceSpecifier::Topic(topic)], &admin_opts()),
    )
    .expect("describe_configs");
    let r = res[0].as_ref().expect("configs");
    let e = r.get(name).expect("entry");
    (e.value.clone(), format!("{:?}", e.source))
}

#[test]
fn topics_lifecycle() {
    let g = Gregor::start(&[]);
    let t = topic_name("cli-topic");

    let out = ok(
        &g,
        &[
            "topics",
            "--create",
            "--topic",
            &t,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=123456",
        ],
    );
    assert!(out.contains(&format!("Created topic {t}")), "{out}");
    wait_for_partitions(&g.admin(), &t, 3);
    assert_eq!(
        topic_config(&g, &t, "retention.ms"),
        (Some("123456".into()), "DynamicTopic".into())
    );

    // Again: a one-line error naming the problem; with --if-not-exists: success.
    let err = fails(&g, &["topics", "--create", "--topic", &t]);
    assert!(
        err.starts_with("gregor topics:") && err.contains("TopicAlreadyExists"),
        "{err}"
    );
    ok(
        &g,
        &["topics", "--create", "--topic", &t, "--if-not-exists"],
    );
    assert_eq!(partitions_of(&g, &t), Some(3));

    // Default partition count (the broker's num.partitions).
    let t2 = topic_name("cli-other");
    ok(&g, &["topics", "--create", "--topic", &t2]);
    wait_for_partitions(&g.admin(), &t2, 1);

    let list = ok(&g, &["topics", "--list"]);
    let names: Vec<&str> = list.lines().collect();
    assert!(
        names.contains(&t.as_str()) && names.contains(&t2.as_str()),
        "{list}"
    );

    let desc = ok(&g, &["topics", "--describe", "--topic", &t]);
    let lines: Vec<&str> = desc.lines().collect();
    assert_eq!(lines.len(), 4, "{desc}");
    assert!(
        lines[0].starts_with(&format!("Topic: {t}\tTopicId: ")),
        "{desc}"
    );
    assert!(
        lines[0].contains("PartitionCount: 3\tReplicationFactor: 1"),
        "{desc}"
    );
    assert!(
        lines[0].contains("Configs: ") && lines[0].contains("retention.ms=123456"),
        "{desc}"
    );
    assert!(!lines[0].contains("TopicId: -"), "topic id missing: {desc}");
    for (p, line) in lines[1..].iter().enumerate() {
        assert_eq!(
            line.trim(),
            format!("Topic: {t}\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1"),
            "{desc}"
        );
    }
    // All topics.
    let all = ok(&g, &["topics", "--describe"]);
    assert!(all.contains(&format!("Topic: {t2}\t")), "{all}");

    // Unknown topic.
    let err = fails(&g, &["topics", "--describe", "--topic", "no-such-topic"]);
    assert!(err.contains("no-such-topic"), "{err}");

    // Alter partitions.
    ok(
        &g,
        &["topics", "--alter", "--topic", &t, "--partitions", "5"],
    );
    wait_for_partitions(&g.admin(), &t, 5);
    let desc = ok(&g, &["topics", "--describe", "--topic", &t]);
    assert!(desc.contains("PartitionCount: 5"), "{desc}");
    // Fewer partitions: refused by the broker.
    let err = fails(
        &g,
        &["topics", "--alter", "--topic", &t, "--partitions", "2"],
    );
    assert!(err.contains("InvalidPartitions"), "{err}");

    // Delete.
    ok(&g, &["topics", "--delete", "--topic", &t2]);
    let deadline = Instant::now() + common::DEADLINE;
    while partitions_of(&g, &t2).is_some() {
        assert!(Instant::now() < deadline, "{t2} still in metadata");
        std::thread::sleep(Duration::from_millis(50));
    }
    let list = ok(&g, &["topics", "--list"]);
    assert!(!list.lines().any(|l| l == t2), "{list}");
    assert!(list.lines().any(|l| l == t), "{list}");
    let err = fails(&g, &["topics", "--delete", "--topic", &t2]);
    assert!(err.contains("UnknownTopicOrPartition"), "{err}");
    ok(&g, &["topics", "--delete", "--topic", &t2, "--if-exists"]);

    // Usage errors are refused before any request.
    let o = gregor(&g, &["topics", "--create"]);
    assert!(!o.status.success());
    let o = gregor(&g, &["topics"]);
    assert!(!o.status.success(), "an action is required");
}

#[test]
fn unreachable_cluster_fails_within_the_timeout() {
    for args in [
        &["topics", "--list"][..],
        &["topics", "--create", "--topic", "x"],
        &["configs", "--describe", "--topic", "x"],
        &["cluster"],
    ] {
        let start = Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_gregor"))
            .args(args)
            .args(["--bootstrap-server", "127.0.0.1:1", "--timeout-secs", "3"])
            .output()
            .expect("run gregor");
        let took = start.elapsed();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("cannot reach the cluster"), "{args:?}: {err}");
        // Under the 30 s default, so --timeout-secs 3 was honoured (with room for a loaded
        // machine: no latency is measured here).
        assert!(took < Duration::from_secs(20), "{args:?} took {took:?}");
    }
}

#[test]
fn configs_alter_and_describe() {
    let g = Gregor::start(&[]);
    let t = topic_name("cli-cfg");
    g.create_topic(&t, 1);

    let out = ok(
        &g,
        &[
            "configs",
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            &t,
            "--add-config",
            "retention.ms=1000,cleanup.policy=[compact,delete]",
        ],
    );
    assert!(out.contains("Completed updating config"), "{out}");
    assert_eq!(
        topic_config(&g, &t, "retention.ms"),
        (Some("1000".into()), "DynamicTopic".into())
    );
    assert_eq!(
        topic_config(&g, &t, "cleanup.policy").0.as_deref(),
        Some("compact,delete")
    );

    let desc = ok(
        &g,
        &[
            "configs",
            "--describe",
            "--entity-type",
            "topics",
            "--entity-name",
            &t,
        ],
    );
    let header = desc.lines().next().unwrap();
    assert!(header.starts_with("NAME") && header.contains("VALUE") && header.contains("SOURCE"));
    let row = |name: &str, desc: &str| -> Vec<String> {
        desc.lines()
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|cols| cols.first().map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("{name} not in\n{desc}"))
    };
    assert_eq!(
        row("retention.ms", &desc),
        ["retention.ms", "1000", "DYNAMIC_TOPIC_CONFIG"]
    );

    // Incremental: deleting one key leaves the other.
    ok(
        &g,
        &[
            "configs",
            "--alter",
            "--topic",
            &t,
            "--delete-config",
            "retention.ms",
        ],
    );
    let (value, source) = topic_config(&g, &t, "retention.ms");
    assert_eq!(source, "Default");
    assert_eq!(value.as_deref(), Some("604800000"));
    assert_eq!(
        topic_config(&g, &t, "cleanup.policy").0.as_deref(),
        Some("compact,delete")
    );
    let desc = ok(&g, &["configs", "--describe", "--topic", &t]);
    assert_eq!(
        row("retention.ms", &desc),
        ["retention.ms", "604800000", "DEFAULT_CONFIG"]
    );

    // JSON.
    let json: serde_json::Value = serde_json::from_str(&ok(
        &g,
        &["configs", "--describe", "--topic", &t, "--output", "json"],
    ))
    .expect("json");
    let entry = json["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "cleanup.policy")
        .expect("cleanup.policy");
    assert_eq!(entry["source"], "DYNAMIC_TOPIC_CONFIG");

    // Invalid value, unknown name, unknown topic: one-line errors, nothing changed.
    let err = fails(
        &g,
        &[
            "configs",
            "--alter",
            "--topic",
            &t,
            "--add-config",
            "retention.ms=abc",
        ],
    );
    assert!(err.contains("retention.ms"), "{err}");
    assert_eq!(topic_config(&g, &t, "retention.ms").1, "Default");
    let err = fails(
        &g,
        &[
            "configs",
            "--alter",
            "--topic",
            &t,
            "--add-config",
            "no.such.config=1",
        ],
    );
    assert!(err.contains("no.such.config"), "{err}");
    let err = fails(
        &g,
        &[
            "configs",
            "--alter",
            "--topic",
            "nope",
            "--add-config",
            "retention.ms=1",
        ],
    );
    assert!(err.contains("nope"), "{err}");
    let err = fails(&g, &["configs", "--describe", "--topic", "nope"]);
    assert!(err.contains("nope"), "{err}");
    fails(
        &g,
        &[
            "configs",
            "--alter",
            "--topic",
            &t,
            "--add-config",
            "novalue",
        ],
    );

    // Brokers.
    let desc = ok(
        &g,
        &[
            "configs",
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
        ],
    );
    assert!(desc.lines().count() > 5, "{desc}");
    fails(&g, &["configs", "--describe", "--broker", "42"]);
    // Groups: a group may have configs before it exists; unset ones show the broker's default.
    let group = |action: &str, extra: &[&str]| {
        let mut args = vec![
            "configs",
            action,
            "--entity-type",
            "groups",
            "--entity-name",
            "payments",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| ok(&g, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let desc = run(group("--describe", &[]));
    assert!(
        desc.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["consumer.session.timeout.ms", "45000", "DEFAULT_CONFIG"]),
        "{desc}"
    );
    let out = run(group(
        "--alter",
        &["--add-config", "consumer.session.timeout.ms=50000"],
    ));
    assert!(
        out.contains("Completed updating config for group payments"),
        "{out}"
    );
    let desc = run(group("--describe", &[]));
    assert!(
        desc.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["consumer.session.timeout.ms", "50000", "GROUP_CONFIG"]),
        "{desc}"
    );
    assert!(
        desc.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["consumer.heartbeat.interval.ms", "5000", "DEFAULT_CONFIG"]),
        "{desc}"
    );
    // Outside the broker's bounds (group.consumer.max.session.timeout.ms) and unknown names.
    let args = group(
        "--alter",
        &["--add-config", "consumer.session.timeout.ms=90000"],
    );
    let err = fails(&g, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("group.consumer.max.session.timeout.ms"),
        "{err}"
    );
    let args = group("--alter", &["--add-config", "retention.ms=1"]);
    let err = fails(&g, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("Unknown group config name: retention.ms"),
        "{err}"
    );
    run(group(
        "--alter",
        &["--delete-config", "consumer.session.timeout.ms"],
    ));
    let desc = run(group("--describe", &["--output", "json"]));
    let json: serde_json::Value = serde_json::from_str(&desc).expect("json");
    let session = json["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .find(|c| c["name"] == "consumer.session.timeout.ms")
        .expect("session timeout described");
    assert_eq!(session["value"], "45000");
    assert_eq!(session["source"], "DEFAULT_CONFIG");
}

#[test]
fn cluster_shows_brokers_and_api_versions() {
    let g = Gregor::start(&[]);
    let out = ok(&g, &["cluster"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("Cluster ID: ") && lines[0].len() > "Cluster ID: ".len() + 5,
        "{out}"
    );
    assert_eq!(lines[1], "Controller: 1", "{out}");
    assert_eq!(
        lines[2], "Metadata quorum: leader 1, voters 1, observers -",
        "{out}"
    );
    let broker_row = lines
        .iter()
        .find(|l| l.starts_with("1 "))
        .unwrap_or_else(|| panic!("no broker 1 row:\n{out}"));
    assert!(
        broker_row.contains(&format!("127.0.0.1:{}", g.port)),
        "{out}"
    );
    let api = |name: &str| -> Vec<String> {
        lines
            .iter()
            .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|c| c.first().map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("{name} not in\n{out}"))
    };
    assert!(
        out.contains("API") && out.contains("KEY") && out.contains("MIN") && out.contains("MAX")
    );
    assert_eq!(api("Produce")[1], "0");
    assert_eq!(api("Fetch")[1], "1");
    assert_eq!(api("ApiVersions")[1], "18");

    let json: serde_json::Value =
        serde_json::from_str(&ok(&g, &["cluster", "--output", "json"])).expect("json");
    assert_eq!(json["controller"], 1);
    assert_eq!(json["brokers"][0]["id"], 1);
    assert_eq!(json["brokers"][0]["port"], g.port);
    assert_eq!(json["brokers"][0]["fenced"], false);
    assert_eq!(json["quorum"]["leader"], 1);
    let apis = json["brokers"][0]["api_versions"]
        .as_array()
        .expect("api_versions");
    assert!(apis.iter().any(|a| a["api"] == "Produce" && a["key"] == 0));
    assert!(apis
        .iter()
        .any(|a| a["api"] == "Fetch" && a["max"].as_i64() >= Some(4)));
}

#[test]
fn help_has_examples() {
    for tool in ["topics", "configs", "cluster"] {
        let o = Command::new(env!("CARGO_BIN_EXE_gregor"))
            .args([tool, "--help"])
            .output()
            .expect("run gregor");
        assert!(o.status.success());
        let help = stdout(&o);
        assert!(
            help.contains("Examples:") && help.contains("--bootstrap-server"),
            "{tool}: {help}"
        );
    }
}

#[test]
fn describe_filters() {
    let g = Gregor::start(&[]);
    let (tuned, plain) = (topic_name("tuned"), topic_name("plain"));
    ok(
        &g,
        &[
            "topics",
            "--create",
            "--topic",
            &tuned,
            "--config",
            "retention.ms=1000",
        ],
    );
    ok(
        &g,
        &["topics", "--create", "--topic", &plain, "--partitions", "2"],
    );
    let overridden = ok(&g, &["topics", "--describe", "--topics-with-overrides"]);
    assert!(overridden.contains(&tuned), "{overridden}");
    assert!(!overridden.contains(&plain), "{overridden}");
    // One broker: every partition has its full ISR and a leader.
    let under = ok(
        &g,
        &["topics", "--describe", "--under-replicated-partitions"],
    );
    assert_eq!(under.trim(), "");
    let unavailable = ok(&g, &["topics", "--describe", "--unavailable-partitions"]);
    assert_eq!(unavailable.trim(), "");
    let all = ok(&g, &["topics", "--describe", "--topic", &plain]);
    assert_eq!(all.matches("Partition:").count(), 2, "{all}");
}

#[test]
fn create_with_a_replica_assignment() {
    let g = Gregor::start(&[]);
    let t = topic_name("assigned");
    ok(
        &g,
        &[
            "topics",
            "--create",
            "--topic",
            &t,
            "--replica-assignment",
            "1,1,1",
        ],
    );
    let described = ok(&g, &["topics", "--describe", "--topic", &t]);
    assert!(described.contains("PartitionCount: 3"), "{described}");
    // Broker 2 does not exist: the broker refuses the assignment.
    let refused = gregor(
        &g,
        &[
            "topics",
            "--create",
            "--topic",
            &topic_name("bad"),
            "--replica-assignment",
            "1:2",
        ],
    );
    assert!(!refused.status.success());
    assert_eq!(
        stderr(&refused).trim().lines().count(),
        1,
        "{}",
        stderr(&refused)
    );
    let malformed = gregor(
        &g,
        &[
            "topics",
            "--create",
            "--topic",
            &topic_name("bad"),
            "--replica-assignment",
            "1:x",
        ],
    );
    assert!(!malformed.status.success());
    assert!(stderr(&malformed).contains("--replica-assignment"));
}

#[test]
fn topic_patterns_select_whole_names() {
    let g = Gregor::start(&[]);
    for t in ["reg-a1", "reg-a2", "reg-b", "xreg-a3"] {
        ok(&g, &["topics", "--create", "--topic", t]);
    }
    let described = ok(&g, &["topics", "--describe", "--topic", "reg-a.*"]);
    assert!(described.contains("Topic: reg-a1") && described.contains("Topic: reg-a2"));
    assert!(
        !described.contains("reg-b") && !described.contains("xreg-a3"),
        "{described}"
    );
    ok(&g, &["topics", "--delete", "--topic", "reg-a.*"]);
    let listed = ok(&g, &["topics", "--list"]);
    let names: Vec<&str> = listed.lines().collect();
    assert_eq!(names, ["reg-b", "xreg-a3"], "{listed}");
    assert!(
        !gregor(&g, &["topics", "--describe", "--topic", "nothing-.*"])
            .status
            .success()
    );
}

#[test]
fn transactions_list_and_describe() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let g = Gregor::start(&["transaction.state.log.num.partitions=3"]);
    g.create_topic("tx", 2);
    let mut config = g.client_config();
    config.set("transactional.id", "cli-tx");
    let producer: BaseProducer = config.create().expect("producer");
    let timeout = Duration::from_secs(20);
    producer.init_transactions(timeout).unwrap();
    producer.begin_transaction().unwrap();
    producer
        .send(
            BaseRecord::<(), [u8]>::to("tx")
                .partition(1)
                .payload(&b"v"[..]),
        )
        .unwrap();
    producer.flush(timeout).unwrap();

    let rows = |args: &[&str]| -> Vec<Vec<String>> {
        ok(&g, args)
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    };
    let listed = rows(&["transactions", "--list"]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0][0].as_str(), listed[0][3].as_str()),
        ("cli-tx", "Ongoing")
    );
    let json: serde_json::Value = serde_json::from_str(&ok(
        &g,
        &[
            "transactions",
            "--describe",
            "--transactional-id",
            "cli-tx",
            "--output",
            "json",
        ],
    ))
    .expect("json");
    assert_eq!(json["state"], "Ongoing");
    assert_eq!(json["partitions"], serde_json::json!(["tx-1"]));
    assert!(json["duration_ms"].as_i64().unwrap() >= 0, "{json}");

    producer.commit_transaction(timeout).unwrap();
    assert!(rows(&["transactions", "--list", "--state", "Ongoing"]).is_empty());
    let done = rows(&["transactions", "--list", "--state", "CompleteCommit"]);
    assert_eq!(done.len(), 1, "{done:?}");
    let err = fails(
        &g,
        &["transactions", "--describe", "--transactional-id", "nobody"],
    );
    assert!(err.contains("transactional id nobody not found"), "{err}");
    let err = fails(&g, &["transactions", "--list", "--state", "Sleeping"]);
    assert!(err.contains("unknown transaction state Sleeping"), "{err}");
}
