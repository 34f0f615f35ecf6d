//! The console tools as users run them: `gregor produce`, `gregor consume` and `gregor groups`,
//! the real binary against a real broker, checking both what they print and what they did.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Gregor, DEADLINE};
use rdkafka::message::Message;

const BROKER: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "group.min.session.timeout.ms=1000",
    "offsets.topic.num.partitions=3",
    "auto.create.topics.enable=false",
];

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn spawn(args: &[&str], stdin: Option<&str>) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gregor");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).unwrap();
    }
    child
}

/// Waits for `child` (killing it after `limit`) and collects its output.
fn finish(mut child: Child, limit: Duration, what: &str) -> Out {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`gregor {what}` still running after {limit:?}; stderr: {}",
                err_t.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Out {
        ok: status.success(),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Runs `gregor <args>` against `g` with `stdin`, returning its output.
fn gregor(g: &Gregor, args: &[&str], stdin: Option<&str>) -> Out {
    let bootstrap = g.bootstrap();
    let mut all = args.to_vec();
    all.extend([
        "--bootstrap-server",
        &bootstrap,
        "-X",
        "broker.address.family=v4",
    ]);
    finish(spawn(&all, stdin), DEADLINE * 2, &args.join(" "))
}

/// Like `gregor`, but the command must succeed.
fn ok(g: &Gregor, args: &[&str], stdin: Option<&str>) -> String {
    let out = gregor(g, args, stdin);
    assert!(
        out.ok,
        "`gregor {}` failed:\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// The offset columns of `groups --describe` for one partition:
/// (CURRENT-OFFSET, LOG-END-OFFSET, LAG, CONSUMER-ID).
fn offsets_row(describe: &str, topic: &str, partition: i32) -> Option<Vec<String>> {
    let header = describe.lines().find(|l| l.contains("CURRENT-OFFSET"))?;
    let cols: Vec<&str> = header.split_whitespace().collect();
    let col = |name: &str| cols.iter().position(|c| *c == name).unwrap();
    describe.lines().find_map(|l| {
        let cells: Vec<&str> = l.split_whitespace().collect();
        (cells.len() == cols.len()
            && cells[col("TOPIC")] == topic
            && cells[col("PARTITION")] == partition.to_string())
        .then(|| {
            ["CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID"]
                .iter()
                .map(|c| cells[col(c)].to_string())
                .collect()
        })
    })
}

#[test]
fn produce_with_keys_then_consume_with_a_format_and_as_json() {
    let g = Gregor::start(BROKER);
    let topic = common::topic_name("cli-keys");
    g.create_topic(&topic, 1);

    let out = gregor(
        &g,
        &["produce", "--topic", &topic, "--key-separator", ":"],
        Some("k1:v1\nk2:v:2\nk3:\n"),
    );
    assert!(out.ok, "produce failed: {}", out.stderr);
    assert_eq!(out.stderr, "");
    // Kafka's property names work too, as do headers in front of the key.
    ok(
        &g,
        &[
            "produce",
            "--topic",
            &topic,
            "--property",
            "parse.key=true",
            "--property",
            "parse.headers=true",
            "--header",
            "src=cli",
        ],
        Some("h1:a,h2:b\tk4\tv4\n"),
    );

    // The records really are there, with their keys.
    let msgs = g.consume(&topic, &[0], 4);
    let keys: Vec<&[u8]> = msgs.iter().map(|m| m.key().unwrap()).collect();
    assert_eq!(keys, [&b"k1"[..], b"k2", b"k3", b"k4"]);
    assert_eq!(msgs[1].payload(), Some(&b"v:2"[..]));
    assert_eq!(
        common::headers_of(&msgs[3]),
        [
            ("h1".to_string(), Some(b"a".to_vec())),
            ("h2".to_string(), Some(b"b".to_vec())),
            ("src".to_string(), Some(b"cli".to_vec())),
        ]
    );

    let printed = ok(
        &g,
        &[
            "consume",
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "3",
            "--format",
            "%k=%s@%o\\n",
        ],
        None,
    );
    assert_eq!(printed, "k1=v1@0\nk2=v:2@1\nk3=@2\n");

    let json = ok(
        &g,
        &[
            "consume",
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "4",
            "--output",
            "json",
        ],
        None,
    );
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 4);
    let last = &lines[3];
    assert_eq!(last["topic"], topic.as_str());
    assert_eq!(last["partition"], 0);
    assert_eq!(last["offset"], 3);
    assert_eq!(last["key"], "k4");
    assert_eq!(last["value"], "v4");
    assert!(last["timestamp"].as_i64().unwrap() > 0);
    assert_eq!(last["headers"][0]["key"], "h1");
    assert_eq!(last["headers"][2]["value"], "cli");

    // --timeout ends a consumer that has nothing (more) to read.
    let started = Instant::now();
    let rest = ok(
        &g,
        &["consume", "--topic", &topic, "--timeout", "1000"],
        None,
    );
    assert_eq!(rest, "");
    // Without --timeout it would wait for records forever.
    assert!(started.elapsed() < Duration::from_secs(20));

    // A line without the separator fails, with its line number, and the exit is non-zero; the
    // good lines still go out.
    let out = gregor(
        &g,
        &["produce", "--topic", &topic, "--key-separator", ":"],
        Some("k5:v5\nno separator\n"),
    );
    assert!(!out.ok);
    assert!(out.stderr.contains("line 2"), "{}", out.stderr);
    let printed = ok(
        &g,
        &[
            "consume",
            "--topic",
            &topic,
            "--partition",
            "0",
            "--offset",
            "4",
            "--format",
            "%k %s\\n",
            "--timeout",
            "1000",
        ],
        None,
    );
    assert_eq!(printed, "k5 v5\n");
}

#[test]
fn partition_targeting_and_offsets() {
    let g = Gregor::start(BROKER);
    let topic = common::topic_name("cli-part");
    g.create_topic(&topic, 3);
    ok(
        &g,
        &[
            "produce",
            "--topic",
            &topic,
            "--partition",
            "2",
            "--acks",
            "1",
            "--compression-type",
            "lz4",
        ],
        Some("a\nb\nc\n"),
    );
    ok(
        &g,
        &[
            "produce",
            "--topic",
            &topic,
            "--partition",
            "1",
            "--idempotence",
            "--compression-type",
            "zstd",
        ],
        Some("i1\ni2\n"),
    );
    let msgs = g.consume(&topic, &[0, 1, 2], 5);
    assert_eq!(msgs.iter().filter(|m| m.partition() == 2).count(), 3);
    assert_eq!(msgs.iter().filter(|m| m.partition() == 1).count(), 2);
    let printed = ok(
        &g,
        &[
            "consume",
            "--topic",
            &topic,
            "--partition",
            "1",
            "--offset",
            "0",
            "--isolation-level",
            "read_committed",
            "--max-messages",
            "2",
        ],
        None,
    );
    assert_eq!(printed, "i1\ni2\n");

    let printed = ok(
        &g,
        &[
            "consume",
            "--topic",
            &topic,
            "--partition",
            "2",
            "--offset",
            "1",
            "--format",
            "%p:%o:%s\\n",
            "--max-messages",
            "2",
        ],
        None,
    );
    assert_eq!(printed, "2:1:b\n2:2:c\n");
    let printed = ok(
        &g,
        &[
            "consume",
            "--topic",
            &topic,
            "--partition",
            "0",
            "--offset",
            "earliest",
            "--timeout",
            "1000",
        ],
        None,
    );
    assert_eq!(printed, "");

    let out = gregor(
        &g,
        &["produce", "--topic", &topic, "--partition", "7"],
        Some("x\n"),
    );
    assert!(!out.ok);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

#[test]
fn group_consume_describe_reset_and_delete() {
    let g = Gregor::start(BROKER);
    let topic = common::topic_name("cli-grp");
    let group = common::topic_name("cli-group");
    g.create_topic(&topic, 1);
    ok(&g, &["produce", "--topic", &topic], Some("r0\nr1\nr2\n"));

    let printed = ok(
        &g,
        &[
            "consume",
            "--topic",
            &topic,
            "--group",
            &group,
            "--from-beginning",
            "--max-messages",
            "3",
        ],
        None,
    );
    assert_eq!(printed, "r0\nr1\nr2\n");

    let describe = ok(&g, &["groups", "--describe", "--group", &group], None);
    assert_eq!(
        offsets_row(&describe, &topic, 0).unwrap_or_else(|| panic!("{describe}"))[..3],
        ["3", "3", "0"],
        "{describe}"
    );
    assert!(describe.contains("Empty"), "{describe}");
    let list = ok(&g, &["groups", "--list"], None);
    assert!(list.lines().any(|l| l == group), "{list}");

    // Dry run: prints the plan, changes nothing.
    let plan = ok(
        &g,
        &[
            "groups",
            "--reset-offsets",
            "--group",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
            "--dry-run",
        ],
        None,
    );
    assert!(
        plan.lines().next().unwrap().contains("NEW-OFFSET"),
        "{plan}"
    );
    let row: Vec<&str> = plan.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, [group.as_str(), topic.as_str(), "0", "0"]);
    let describe = ok(&g, &["groups", "--describe", "--group", &group], None);
    assert_eq!(offsets_row(&describe, &topic, 0).unwrap()[0], "3");

    // Execute: the group starts over.
    ok(
        &g,
        &[
            "groups",
            "--reset-offsets",
            "--group",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
            "--execute",
        ],
        None,
    );
    let printed = ok(
        &g,
        &[
            "consume",
            "--topic",
            &topic,
            "--group",
            &group,
            "--max-messages",
            "3",
            "--format",
            "%o\\n",
        ],
        None,
    );
    assert_eq!(printed, "0\n1\n2\n");

    // Shift back by one: the next consume starts at the last record.
    ok(
        &g,
        &[
            "groups",
            "--reset-offsets",
            "--group",
            &group,
            "--topic",
            &topic,
            "--shift-by",
            "-1",
            "--execute",
        ],
        None,
    );
    let describe = ok(&g, &["groups", "--describe", "--group", &group], None);
    assert_eq!(
        offsets_row(&describe, &topic, 0).unwrap()[..3],
        ["2", "3", "1"]
    );

    // Other targets, as dry runs: a time before every record, one after, an explicit offset.
    for (spec, expected) in [
        (&["--to-datetime", "2000-01-01T00:00:00.000"][..], "0"),
        (&["--to-datetime", "2999-01-01T00:00:00Z"][..], "3"),
        // Every record is younger than a day; none is younger than "now minus nothing".
        (&["--by-duration", "P1D"][..], "0"),
        (&["--by-duration", "PT0S"][..], "3"),
        (&["--to-offset", "1"][..], "1"),
        (&["--to-offset", "99"][..], "3"),
    ] {
        let mut args = vec![
            "groups",
            "--reset-offsets",
            "--group",
            &group,
            "--topic",
            &topic,
        ];
        args.extend(spec);
        args.push("--dry-run");
        let plan = ok(&g, &args, None);
        let row: Vec<&str> = plan.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(row[3], expected, "{spec:?}: {plan}");
    }

    // A live member: describe shows it owning the partition; resetting is refused.
    let bootstrap = g.bootstrap();
    let member = spawn(
        &[
            "consume",
            "--topic",
            &topic,
            "--group",
            &group,
            "--max-messages",
            "2",
            "--format",
            "%o\\n",
            "--bootstrap-server",
            &bootstrap,
            "-X",
            "client.id=cli-member",
        ],
        None,
    );
    let deadline = Instant::now() + DEADLINE;
    let describe = loop {
        let d = ok(&g, &["groups", "--describe", "--group", &group], None);
        if d.contains("cli-member") && d.contains("Stable") {
            if let Some(row) = offsets_row(&d, &topic, 0) {
                if row[3] != "-" {
                    break d;
                }
            }
        }
        assert!(Instant::now() < deadline, "member never showed up: {d}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(describe.contains(&format!("{topic}(0)")), "{describe}");
    let refused = gregor(
        &g,
        &[
            "groups",
            "--reset-offsets",
            "--group",
            &group,
            "--topic",
            &topic,
            "--to-latest",
            "--execute",
        ],
        None,
    );
    assert!(!refused.ok);
    assert!(refused.stderr.contains("inactive"), "{}", refused.stderr);
    ok(&g, &["produce", "--topic", &topic], Some("r3\n"));
    let out = finish(member, DEADLINE, "consume (member)");
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout, "2\n3\n");

    // Delete the topic's offsets, then the group.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = gregor(
            &g,
            &[
                "groups",
                "--delete-offsets",
                "--group",
                &group,
                "--topic",
                &topic,
            ],
            None,
        );
        if out.ok {
            assert!(out.stdout.contains("Successful"), "{}", out.stdout);
            break;
        }
        // The member's leave may still be in flight.
        assert!(Instant::now() < deadline, "{}", out.stderr);
        std::thread::sleep(Duration::from_millis(200));
    }
    let describe = ok(&g, &["groups", "--describe", "--group", &group], None);
    assert!(offsets_row(&describe, &topic, 0).is_none(), "{describe}");

    let out = ok(&g, &["groups", "--delete", "--group", &group], None);
    assert!(out.contains("successful"), "{out}");
    let list = ok(&g, &["groups", "--list"], None);
    assert!(!list.lines().any(|l| l == group), "{list}");
}

#[test]
fn unknown_topic_and_unreachable_cluster_fail_with_one_line() {
    let g = Gregor::start(BROKER);
    let out = gregor(&g, &["produce", "--topic", "no-such-topic"], Some("x\n"));
    assert!(!out.ok);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    let out = gregor(&g, &["consume", "--topic", "no-such-topic"], None);
    assert!(!out.ok);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);

    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bootstrap = format!("127.0.0.1:{port}");
    let cases: [&[&str]; 4] = [
        &["produce", "--topic", "t"],
        &["consume", "--topic", "t"],
        &["groups", "--list"],
        &["groups", "--describe", "--group", "g"],
    ];
    for args in cases {
        let mut all = args.to_vec();
        all.extend(["--bootstrap-server", &bootstrap, "--timeout-secs", "2"]);
        let started = Instant::now();
        let out = finish(
            spawn(&all, Some("x\n")),
            Duration::from_secs(20),
            &args.join(" "),
        );
        assert!(!out.ok, "{args:?} succeeded");
        // Under the 30 s default, so --timeout-secs 2 was honoured (with room for a loaded
        // machine: no latency is measured here).
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{args:?} took {:?}",
            started.elapsed()
        );
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("gregor "), "{}", out.stderr);
    }
}

/// Ctrl-C (SIGINT) ends a group consumer cleanly: exit 0 and the offsets of what it printed are
/// committed, as kafka-console-consumer does.
#[test]
fn interrupted_group_consumer_commits_what_it_printed() {
    use std::io::BufRead;

    let g = Gregor::start(&["group.initial.rebalance.delay.ms=0"]);
    g.create_topic("ctrl-c", 1);
    ok(
        &g,
        &["produce", "--topic", "ctrl-c"],
        Some("a\nb\nc\nd\ne\n"),
    );
    let bootstrap = g.bootstrap();
    let mut child = spawn(
        &[
            "consume",
            "--topic",
            "ctrl-c",
            "--group",
            "interrupted",
            "--from-beginning",
            "--bootstrap-server",
            &bootstrap,
            "-X",
            "broker.address.family=v4",
        ],
        None,
    );
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = lines_tx.send(line.unwrap());
        }
    });
    let printed: Vec<String> = (0..5)
        .map(|_| {
            lines
                .recv_timeout(DEADLINE)
                .expect("the consumer prints every record")
        })
        .collect();
    assert_eq!(printed, ["a", "b", "c", "d", "e"]);
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the consumer ignored SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let describe = ok(
        &g,
        &["groups", "--describe", "--group", "interrupted"],
        None,
    );
    let row = offsets_row(&describe, "ctrl-c", 0).expect("a committed offset row");
    assert_eq!(&row[..3], ["5", "5", "0"], "{describe}");
}

/// `--property null.marker=NULL` sends a matching value as null: a tombstone.
#[test]
fn null_marker_produces_tombstones() {
    let g = Gregor::start(&[]);
    g.create_topic("tomb", 1);
    ok(
        &g,
        &[
            "produce",
            "--topic",
            "tomb",
            "--key-separator",
            ":",
            "--property",
            "null.marker=NULL",
        ],
        Some("k1:v1\nk1:NULL\n"),
    );
    let got = g.consume("tomb", &[0], 2);
    assert_eq!(got[0].payload(), Some(&b"v1"[..]));
    assert_eq!(got[1].key(), Some(&b"k1"[..]));
    assert_eq!(got[1].payload(), None, "the marker became a null value");
}

/// `--export` prints the plan as CSV; `--from-file` applies such a file.
#[test]
fn reset_plans_export_and_import() {
    let g = Gregor::start(&["group.initial.rebalance.delay.ms=0"]);
    g.create_topic("plans", 1);
    ok(&g, &["produce", "--topic", "plans"], Some("a\nb\nc\n"));
    ok(
        &g,
        &[
            "consume",
            "--topic",
            "plans",
            "--group",
            "planned",
            "--from-beginning",
            "--max-messages",
            "3",
        ],
        None,
    );
    let exported = ok(
        &g,
        &[
            "groups",
            "--reset-offsets",
            "--group",
            "planned",
            "--topic",
            "plans",
            "--to-earliest",
            "--export",
            "--dry-run",
        ],
        None,
    );
    assert_eq!(exported.trim(), "plans,0,0");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.csv");
    std::fs::write(&file, "# edited plan\nplans,0,1\n").unwrap();
    let path = file.to_str().unwrap();
    ok(
        &g,
        &[
            "groups",
            "--reset-offsets",
            "--group",
            "planned",
            "--from-file",
            path,
            "--execute",
        ],
        None,
    );
    let describe = ok(&g, &["groups", "--describe", "--group", "planned"], None);
    let row = offsets_row(&describe, "plans", 0).expect("an offsets row");
    assert_eq!(&row[..3], ["1", "3", "2"], "{describe}");
    std::fs::write(&file, "plans,zero,1\n").unwrap();
    let bad = gregor(
        &g,
        &[
            "groups",
            "--reset-offsets",
            "--group",
            "planned",
            "--from-file",
            path,
            "--execute",
        ],
        None,
    );
    assert!(
        !bad.ok && bad.stderr.contains("expected TOPIC,PARTITION,OFFSET"),
        "{}",
        bad.stderr
    );
}

/// `--transactional-id`: the input is one transaction, committed at the end; a line that cannot
/// be parsed aborts all of it, which read_committed consumers never see.
#[test]
fn transactional_produce_is_all_or_nothing() {
    let g = Gregor::start(BROKER);
    g.create_topic("txn", 1);
    let produce = [
        "produce",
        "--topic",
        "txn",
        "--transactional-id",
        "cli-tx",
        "--key-separator",
        ":",
    ];
    ok(&g, &produce, Some("k1:a\nk2:b\n"));
    let failed = gregor(&g, &produce, Some("k3:c\nno separator\n"));
    assert!(!failed.ok);
    assert!(
        failed
            .stderr
            .contains("1 of 2 records failed; the transaction was aborted"),
        "{}",
        failed.stderr
    );
    ok(&g, &produce, Some("k4:d\n"));
    let committed = ok(
        &g,
        &[
            "consume",
            "--topic",
            "txn",
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            "--timeout",
            "2000",
            "--format",
            "%k=%s\n",
        ],
        None,
    );
    assert_eq!(committed, "k1=a\nk2=b\nk4=d\n");
}
