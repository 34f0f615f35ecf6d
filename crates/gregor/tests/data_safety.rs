//! Data safety at start-up: a broker never deletes what it cannot prove is its own and dead.
//! Damaged partition identity files are rebuilt from the metadata log; partition directories the
//! metadata does not know are set aside (renamed `-stray`), not deleted; directories that are not
//! partition logs are left alone; identity files that did not change are not rewritten.

mod common;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::small_disk::SmallDisk;
use common::{send_ok, Gregor, Rec};
use rdkafka::admin::{AlterConfig, ResourceSpecifier};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;

const N: usize = 500;

fn produce(g: &Gregor, topic: &str) {
    let producer = g.producer(&[("acks", "all")]);
    let recs: Vec<Rec> = (0..N).map(|i| Rec::value(format!("r{i}"))).collect();
    send_ok(&producer, topic, &recs);
}

fn assert_all_there(g: &Gregor, topic: &str) {
    let got = g.consume(topic, &[0], N);
    let values: Vec<_> = got
        .iter()
        .map(|m| m.payload().unwrap_or_default().to_vec())
        .collect();
    let expected: Vec<_> = (0..N).map(|i| format!("r{i}").into_bytes()).collect();
    assert_eq!(values, expected);
}

/// Directories of the data dir whose name starts with `prefix`.
fn dirs_named(g: &Gregor, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(g.data_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

fn restart(g: &mut Gregor) {
    g.terminate(Duration::from_secs(30));
    g.restart();
}

#[test]
fn a_damaged_identity_file_is_rebuilt_and_no_record_is_lost() {
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 3] = [
        ("empty", |p| std::fs::write(p, b"").unwrap()),
        ("garbled", |p| {
            std::fs::write(p, b"\x00\xffnot: a uuid\n").unwrap()
        }),
        ("missing", |p| std::fs::remove_file(p).unwrap()),
    ];
    let mut g = Gregor::start(&[]);
    for (damage, apply) in damages {
        let topic = common::topic_name(damage);
        g.create_topic(&topic, 1);
        produce(&g, &topic);
        let identity = g.data_dir().join(format!("{topic}-0/partition.metadata"));
        let original = std::fs::read(&identity).unwrap();
        g.terminate(Duration::from_secs(30));
        apply(&identity);
        g.restart();
        assert_all_there(&g, &topic);
        assert_eq!(
            std::fs::read(&identity).unwrap(),
            original,
            "{damage}: rebuilt"
        );
        let since_restart = g.log_tail(100);
        let since_restart = since_restart.rsplit("----- restart -----").next().unwrap();
        assert!(
            since_restart
                .lines()
                .any(|l| l.contains("is missing or unreadable; rebuilt") && l.contains(&topic)),
            "{damage}: {since_restart}"
        );
        assert!(
            dirs_named(&g, &format!("{topic}-0.")).is_empty(),
            "{damage}: nothing set aside"
        );
    }
}

/// An identity file naming a topic id that no metadata record mentions proves the metadata log
/// is behind the data: the broker refuses to start (rather than set the data aside and reissue
/// what that log had handed out), names the directory, and starts once it is moved away.
#[test]
fn a_partition_the_metadata_log_never_recorded_stops_the_start() {
    let mut g = Gregor::start(&[]);
    let topic = common::topic_name("unrecorded");
    g.create_topic(&topic, 1);
    produce(&g, &topic);
    let dir = g.data_dir().join(format!("{topic}-0"));
    let log = common::newest_log_segment(&dir);
    // After the clean stop (which gives back space allocated ahead of the writes).
    g.terminate(Duration::from_secs(30));
    let log_bytes = std::fs::read(&log).unwrap();
    let unrecorded = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
    std::fs::write(
        dir.join("partition.metadata"),
        format!("version: 0\ntopic_id: {unrecorded}\n"),
    )
    .unwrap();

    let stderr = common::refused_start(g.data_dir(), &[]);
    assert!(
        stderr.contains("the metadata log does not know the topics"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{topic}-0")) && stderr.contains(unrecorded),
        "{stderr}"
    );
    assert!(
        std::fs::read(&log).unwrap() == log_bytes,
        "the data is untouched"
    );

    // The documented way out: move the directory away; the broker then starts.
    let moved = g.data_dir().join("moved-away");
    std::fs::create_dir(&moved).unwrap();
    std::fs::rename(&dir, moved.join(format!("{topic}-0"))).unwrap();
    g.restart();
    let watermarks = g
        .consumer(&[])
        .fetch_watermarks(&topic, 0, Duration::from_secs(20))
        .unwrap();
    assert_eq!(
        watermarks,
        (0, 0),
        "the topic starts over, its old data moved away"
    );
}

/// The one thing start-up deletes: what a committed topic deletion left behind.
#[test]
fn the_leftover_of_a_deleted_topic_is_deleted() {
    let mut g = Gregor::start(&[]);
    let topic = common::topic_name("deleted");
    g.create_topic(&topic, 1);
    produce(&g, &topic);
    let dir = g.data_dir().join(format!("{topic}-0"));
    let saved = tempfile::tempdir().unwrap();
    let copy = saved.path().join("copy");
    g.terminate(Duration::from_secs(30));
    copy_dir(&dir, &copy);
    g.restart();
    let admin = g.admin();
    common::block_on(admin.delete_topics(&[&topic], &common::admin_opts())).unwrap();
    common::wait_until_gone(&dir);
    // As if the broker had stopped between the deletion's record and its cleanup.
    g.terminate(Duration::from_secs(30));
    copy_dir(&copy, &dir);
    g.restart();
    assert!(!dir.exists());
    assert!(g.log_contains("deleting the directory of a deleted topic"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn unknown_partition_logs_are_set_aside_and_foreign_directories_left_alone() {
    let mut g = Gregor::start(&[]);
    let data = g.data_dir().to_path_buf();
    // A user's directory that only looks like a partition by its name.
    let backup = data.join("mybackup-1");
    std::fs::create_dir(&backup).unwrap();
    std::fs::write(backup.join("notes.txt"), b"keep me").unwrap();
    // A partition log of a topic this metadata never had (copied in, or a lost metadata log).
    let unknown = data.join("elsewhere-3");
    std::fs::create_dir(&unknown).unwrap();
    std::fs::write(unknown.join("00000000000000000000.log"), vec![7u8; 4096]).unwrap();
    restart(&mut g);

    assert_eq!(std::fs::read(backup.join("notes.txt")).unwrap(), b"keep me");
    assert!(!unknown.exists());
    let aside = dirs_named(&g, "elsewhere-3.");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(aside[0].join("00000000000000000000.log")).unwrap(),
        vec![7u8; 4096]
    );
    assert!(g.log_contains("bytes=4096"));
}

#[test]
fn identity_files_that_did_not_change_are_not_rewritten() {
    let mut g = Gregor::start(&[]);
    let topic = common::topic_name("unchanged");
    g.create_topic(&topic, 1);
    let files = [
        g.data_dir().join(format!("{topic}-0/partition.metadata")),
        g.data_dir().join("meta.properties"),
    ];
    let stamp = |p: &PathBuf| {
        let m = std::fs::metadata(p).unwrap();
        (m.ino(), m.mtime(), m.mtime_nsec())
    };
    let before: Vec<_> = files.iter().map(stamp).collect();
    restart(&mut g);
    let after: Vec<_> = files.iter().map(stamp).collect();
    assert_eq!(before, after);
}

/// A partition log of a known topic that this broker does not host under that name (here a
/// partition the topic does not have) is set aside whole, not deleted.
#[test]
fn a_partition_the_topic_does_not_have_is_set_aside() {
    let mut g = Gregor::start(&[]);
    let topic = common::topic_name("moved");
    g.create_topic(&topic, 1);
    produce(&g, &topic);
    let dir = g.data_dir().join(format!("{topic}-0"));
    g.terminate(Duration::from_secs(30));
    let log_bytes = common::newest_log_segment(&dir).metadata().unwrap().len();
    let misplaced = g.data_dir().join(format!("{topic}-7"));
    std::fs::rename(&dir, &misplaced).unwrap();
    g.restart();

    let aside = dirs_named(&g, &format!("{topic}-7."));
    assert_eq!(aside.len(), 1, "{aside:?}");
    let name = aside[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.ends_with("-stray"), "{name}");
    assert_eq!(
        common::newest_log_segment(&aside[0])
            .metadata()
            .unwrap()
            .len(),
        log_bytes
    );
    assert!(g
        .log_tail(200)
        .lines()
        .any(|l| l.contains("partition directory set aside, not deleted") && l.contains(&name)));
}

/// The byte position of the last batch of `segment` whose records contain `needle`.
fn last_batch_containing(segment: &Path, needle: &[u8]) -> u64 {
    let bytes = std::fs::read(segment).unwrap();
    let (mut pos, mut found) = (0usize, None);
    while pos + 12 <= bytes.len() {
        let length = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let end = (pos + 12 + length).min(bytes.len());
        if bytes[pos..end].windows(needle.len()).any(|w| w == needle) {
            found = Some(pos);
        }
        pos = end;
    }
    found.expect("a batch with the needle") as u64
}

/// The metadata log loses its tail, with the producer id block in it: the broker must not hand
/// the same producer ids out again, or a new idempotent producer's batch would be taken for a
/// duplicate of an old one's and acknowledged without being stored.
#[test]
fn a_truncated_metadata_log_does_not_reissue_producer_ids() {
    use std::net::TcpStream;
    let mut g = Gregor::start(&[]);
    let topic = common::topic_name("pids");
    g.create_topic(&topic, 1);
    let values: Vec<&[u8]> = (0..10).map(|_| &b"old"[..]).collect();
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let (error, old_pid, epoch) = common::init_producer_id(&mut s);
    assert_eq!(error, 0);
    let batch = common::record_batch(&values, old_pid, epoch, 0, 1_700_000_000_000);
    s.write_all(&common::produce_v3(2, &topic, &batch)).unwrap();
    let (_, error, base) = common::parse_produce_v3(&common::read_raw_response(&mut s));
    assert_eq!((error, base), (0, 0));
    drop(s);
    g.terminate(Duration::from_secs(30));

    let metadata_log = common::newest_log_segment(&g.data_dir().join("__cluster_metadata-0"));
    let cut = last_batch_containing(&metadata_log, br#""type":"ProducerIds""#);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&metadata_log)
        .unwrap()
        .set_len(cut)
        .unwrap();
    g.restart();

    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let (error, new_pid, epoch) = common::init_producer_id(&mut s);
    assert_eq!(error, 0);
    assert!(new_pid > old_pid, "producer id {new_pid} handed out again");
    let values: Vec<&[u8]> = (0..10).map(|_| &b"new"[..]).collect();
    let batch = common::record_batch(&values, new_pid, epoch, 0, 1_700_000_000_000);
    s.write_all(&common::produce_v3(2, &topic, &batch)).unwrap();
    let (_, error, base) = common::parse_produce_v3(&common::read_raw_response(&mut s));
    assert_eq!(
        (error, base),
        (0, 10),
        "stored after the old records, not taken for them"
    );
    let got = g.consume(&topic, &[0], 20);
    assert_eq!(
        got.iter().filter(|m| m.payload() == Some(b"new")).count(),
        10
    );
    assert!(g.log_contains("hands out producer ids already in use"));
}

/// Sets a hand-edited batch's length and CRC right again, so that only its records are wrong.
fn reseal(b: &mut [u8]) {
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = common::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Batches with a right CRC but records no consumer could read are refused at produce time
/// (librdkafka would stall at such an offset forever), on topics of both timestamp types; good
/// batches in the same run are stored and read back.
#[test]
fn batches_with_unreadable_records_are_refused_and_good_ones_kept() {
    use std::net::TcpStream;
    let g = Gregor::start(&[]);
    let topic = common::topic_name("framing");
    g.create_topic(&topic, 1);
    let append_time = common::topic_name("framing-lat");
    let admin = g.admin();
    let new_topic =
        rdkafka::admin::NewTopic::new(&append_time, 1, rdkafka::admin::TopicReplication::Fixed(1))
            .set("message.timestamp.type", "LogAppendTime");
    common::block_on(admin.create_topics(&[new_topic], &common::admin_opts())).unwrap();
    common::wait_for_partitions(&admin, &append_time, 1);

    let now = 1_700_000_000_000i64.max(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    let good = |v: &str| common::record_batch(&[v.as_bytes(), v.as_bytes()], -1, -1, -1, now);
    let mut bad: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut huge = good("x");
    huge[61..66].copy_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]);
    bad.push(("record length 2^30", huge));
    let mut random = good("x");
    for (i, b) in random[61..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    bad.push(("random records", random));
    for codec in [1u8, 7] {
        let mut b = good("x");
        b[22] |= codec;
        bad.push(("a codec the data is not in", b));
    }
    let mut trailing = good("x");
    trailing.extend_from_slice(&[1, 2, 3]);
    bad.push(("trailing bytes", trailing));
    for (_, b) in bad.iter_mut() {
        reseal(b);
    }

    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let mut correlation = 0;
    for t in [&topic, &append_time] {
        let mut send = |batch: &[u8]| {
            correlation += 1;
            s.write_all(&common::produce_v3(correlation, t, batch))
                .unwrap();
            let (_, error, _) = common::parse_produce_v3(&common::read_raw_response(&mut s));
            error
        };
        assert_eq!(send(&good("before")), 0);
        for (what, b) in &bad {
            let error = send(b);
            assert!(
                [2, 87].contains(&error),
                "{what}: {error}, not CORRUPT_MESSAGE or INVALID_RECORD"
            );
        }
        assert_eq!(send(&good("after")), 0);
        let got = g.consume(t, &[0], 4);
        let values: Vec<_> = got
            .iter()
            .map(|m| m.payload().unwrap_or_default())
            .collect();
        assert_eq!(
            values,
            [&b"before"[..], b"before", b"after", b"after"],
            "{t}"
        );
    }
}

/// Produces 64 KiB batches to `topic` until the broker refuses one; returns that error code.
fn fill(g: &Gregor, topic: &str) -> i16 {
    use std::net::TcpStream;
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let value = vec![b'x'; 60 * 1024];
    for correlation in 0..10_000 {
        let batch = common::record_batch(&[&value], -1, -1, -1, 1_700_000_000_000);
        s.write_all(&common::produce_v3(correlation, topic, &batch))
            .unwrap();
        let (_, error, _) = common::parse_produce_v3(&common::read_raw_response(&mut s));
        if error != 0 {
            return error;
        }
    }
    panic!("the small disk never filled up");
}

/// A full disk: writes fail with KAFKA_STORAGE_ERROR and say so in the log, a topic deletion
/// (which frees the space) still goes through, a restart on the full disk works, and no empty
/// temporary file is left behind.
#[test]
fn a_full_disk_is_survivable() {
    let disk = SmallDisk::mount(48);
    // A fixed port: a restart then has nothing new to record (an address that changes would be).
    let port = common::free_port();
    let mut g = Gregor::start(&[
        &format!("log.dirs={}", disk.path.display()),
        &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        "log.index.size.max.bytes=65536",
        "offsets.topic.num.partitions=1",
    ]);
    g.create_topic("filler", 1);
    assert_eq!(fill(&g, "filler"), 56, "KAFKA_STORAGE_ERROR");
    assert!(g.wait_for_log("cannot write to the partition's log"));

    // A restart on the full disk.
    g.terminate(Duration::from_secs(30));
    g.restart();
    // Every last page taken, metadata records still go in: from the reserve, once their log
    // needs a page. (Config changes write nothing but metadata records.)
    disk.fill_rest();
    let admin = g.admin();
    let mut retention_ms = 1_000_000_000;
    while !g.log_contains("the metadata log used its reserve") {
        retention_ms += 1;
        assert!(retention_ms < 1_000_010_000, "the reserve was never needed");
        let value = retention_ms.to_string();
        let change =
            AlterConfig::new(ResourceSpecifier::Topic("filler")).set("retention.ms", &value);
        common::block_on(admin.alter_configs(&[change], &common::admin_opts())).unwrap();
    }
    let described = common::block_on(
        admin.describe_configs(&[ResourceSpecifier::Topic("filler")], &common::admin_opts()),
    )
    .unwrap();
    let retention = described[0]
        .as_ref()
        .unwrap()
        .get("retention.ms")
        .and_then(|e| e.value.clone());
    assert_eq!(
        retention,
        Some(retention_ms.to_string()),
        "every config change went in"
    );
    // The deletion's record fits too: the space comes back.
    common::block_on(admin.delete_topics(&["filler"], &common::admin_opts()))
        .unwrap()
        .into_iter()
        .for_each(|r| assert!(r.is_ok(), "{r:?}"));
    common::wait_until_gone(&disk.path.join("filler-0"));
    g.create_topic("after", 1);
    let producer = g.producer(&[("acks", "all")]);
    send_ok(&producer, "after", &[Rec::value("fits again")]);
    assert_eq!(
        g.consume("after", &[0], 1)[0].payload(),
        Some(&b"fits again"[..])
    );
    assert!(disk.temp_files().is_empty(), "{:?}", disk.temp_files());
}

/// A second broker on the same log dirs stops at once, before it recovers (truncates) logs the
/// first one is writing.
#[test]
fn a_second_broker_on_the_same_log_dirs_stops_before_touching_them() {
    let g = Gregor::start(&[]);
    let stderr = common::refused_start(g.data_dir(), &[]);
    assert!(stderr.contains("in use by another broker"), "{stderr}");
    // The first one is unaffected.
    g.create_topic("still-served", 1);
}

/// An idempotent client may send any producer id; one at the end of the range does not stop
/// the broker handing out ids after a restart.
#[test]
fn a_client_chosen_producer_id_cannot_exhaust_the_ids() {
    use std::net::TcpStream;
    let mut g = Gregor::start(&[]);
    g.create_topic("any-pid", 1);
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let batch = common::record_batch(&[b"x"], i64::MAX, 0, 0, 1_700_000_000_000);
    s.write_all(&common::produce_v3(1, "any-pid", &batch))
        .unwrap();
    let (_, error, _) = common::parse_produce_v3(&common::read_raw_response(&mut s));
    assert_eq!(error, 0);
    g.terminate(Duration::from_secs(30));
    g.restart();
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    let (error, first, _) = common::init_producer_id(&mut s);
    let (_, second, _) = common::init_producer_id(&mut s);
    assert_eq!(error, 0);
    assert!(first >= 0 && second != first, "{first} then {second}");
}

/// A data dir written by another node id stops the start (as Kafka does), instead of setting
/// every partition aside as a stray.
#[test]
fn a_data_dir_of_another_node_id_stops_the_start() {
    let mut g = Gregor::start(&[]);
    g.create_topic("of-node-1", 1);
    g.terminate(Duration::from_secs(30));
    let stderr = common::refused_start(g.data_dir(), &["node.id=2"]);
    assert!(
        stderr.contains("meta.properties says node.id=1"),
        "{stderr}"
    );
    assert!(
        g.data_dir().join("of-node-1-0").is_dir(),
        "nothing set aside"
    );
    g.restart();
}

/// With `preallocate`, a disk without room for the next allocation step still takes the
/// records: the segment grows with its writes instead (logged once), and they read back.
#[test]
fn preallocation_without_room_falls_back_to_growing_files() {
    let disk = SmallDisk::mount(16);
    let g = Gregor::start(&[
        &format!("log.dirs={}", disk.path.display()),
        "log.preallocate=true",
    ]);
    g.create_topic("tight", 1);
    disk.fill_rest();
    // Room for the records, not for a 1 MiB allocation step.
    disk.give_back(512 * 1024);
    // No retries: the first write must succeed as it is.
    let producer = g.producer(&[("acks", "all"), ("retries", "0")]);
    let recs: Vec<Rec> = (0..100)
        .map(|i| Rec::value(vec![b'0' + (i % 10) as u8; 1000]))
        .collect();
    send_ok(&producer, "tight", &recs);
    assert!(g.wait_for_log("cannot preallocate"));
    let got = g.consume("tight", &[0], 100);
    for (m, r) in got.iter().zip(&recs) {
        assert_eq!(m.payload(), r.value.as_deref());
    }
}

/// A data dir written before the Raft quorum (its metadata log is batches of one JSON record
/// each, with no `quorum-state`) keeps every topic: the old log is set aside and imported once.
#[test]
fn a_metadata_log_from_before_the_quorum_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = dir.path().join("__cluster_metadata-0");
    std::fs::create_dir_all(&metadata).unwrap();
    let id = uuid::Uuid::new_v4();
    let records = [
        r#"{"type":"Cluster","cluster_id":"OldClusterId0000000000"}"#.to_string(),
        format!(r#"{{"type":"Topic","name":"kept","topic_id":"{id}"}}"#),
        format!(
            r#"{{"type":"Partition","topic_id":"{id}","partition":0,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0}}"#
        ),
    ];
    let values: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
    let batch = common::record_batch(&values, -1, -1, -1, 1_700_000_000_000);
    std::fs::write(metadata.join("00000000000000000000.log"), batch).unwrap();

    let dirs = format!("log.dirs={}", dir.path().display());
    let mut g = Gregor::start(&[&dirs]);
    assert!(g.log_contains("importing the metadata log written before the Raft quorum"));
    let metadata_of = |g: &Gregor| {
        g.admin()
            .inner()
            .fetch_metadata(Some("kept"), Duration::from_secs(10))
            .unwrap()
    };
    let found = metadata_of(&g);
    assert_eq!(
        found.topics()[0].partitions().len(),
        1,
        "{:?}",
        found.topics()[0].error()
    );
    let producer = g.producer(&[]);
    send_ok(&producer, "kept", &[Rec::value("after the upgrade")]);
    assert!(
        dir.path().join("__cluster_metadata-0.pre-raft").is_dir(),
        "kept beside"
    );

    // Imported once: a restart finds the topic in the new log and imports nothing.
    g.terminate(Duration::from_secs(30));
    g.restart();
    assert_eq!(metadata_of(&g).topics()[0].partitions().len(), 1);
    assert_eq!(g.consume("kept", &[0], 1).len(), 1);
    let imports = g
        .log_tail(10_000)
        .matches("importing the metadata log written before")
        .count();
    assert_eq!(imports, 1);
}

/// A Raft metadata log that lost its `quorum-state` (vote and commit point) is not taken for a
/// log from before the quorum: it stays where it is and still holds every topic.
#[test]
fn a_metadata_log_without_its_quorum_state_keeps_its_topics() {
    let mut g = Gregor::start(&[]);
    g.create_topic("survives", 1);
    g.terminate(Duration::from_secs(30));
    let metadata = g.data_dir().join("__cluster_metadata-0");
    std::fs::remove_file(metadata.join("quorum-state")).unwrap();
    g.restart();
    assert!(!g.data_dir().join("__cluster_metadata-0.pre-raft").exists());
    assert!(g.log_contains("is not a log from before the Raft quorum"));
    let found = g
        .admin()
        .inner()
        .fetch_metadata(Some("survives"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(found.topics()[0].partitions().len(), 1);
}
