//! A producer of transaction version 2 (KIP-890 part 2), as Kafka 4's Java producer behaves once
//! the cluster finalizes `transaction.version` 2: it never sends AddPartitionsToTxn or
//! AddOffsetsToTxn (Produce v12 and TxnOffsetCommit v5 add their partitions), and every EndTxn
//! v5 bumps its epoch and answers with the one to carry on with. No installable client speaks
//! it yet (librdkafka and kafka-python keep the classic protocol, which the Python suite runs),
//! so this test speaks it on the wire itself; librdkafka reads the outcome back.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::{call, transactional_batch, Gregor};
use gregor_protocol::kafka::messages::produce_request::{PartitionProduceData, TopicProduceData};
use gregor_protocol::kafka::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use gregor_protocol::kafka::messages::*;
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::{ApiKey, RequestKind};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const TXN: &str = "tv2-producer";
const GROUP: &str = "tv2-group";

/// One connection speaking transaction version 2 for one transactional id.
struct Producer {
    s: TcpStream,
    correlation: i32,
    topic: String,
    id: i64,
    epoch: i16,
}

fn txn_id() -> TransactionalId {
    TransactionalId(StrBytes::from_static_str(TXN))
}

impl Producer {
    fn connect(g: &Gregor, topic: &str) -> Producer {
        let s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Producer {
            s,
            correlation: 0,
            topic: topic.to_string(),
            id: -1,
            epoch: -1,
        }
    }

    /// InitProducerId v5 as a new instance would send it, retried while the coordinator ends
    /// the previous instance's transaction (CONCURRENT_TRANSACTIONS).
    fn init(&mut self) {
        let deadline = std::time::Instant::now() + common::DEADLINE;
        loop {
            let init = InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id()))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let ResponseKind::InitProducerId(r) = self.call(ApiKey::InitProducerId, 5, init.into())
            else {
                panic!("not an InitProducerId response");
            };
            if r.error_code == 0 {
                (self.id, self.epoch) = (r.producer_id.0, r.producer_epoch);
                return;
            }
            assert_eq!(r.error_code, 51, "only CONCURRENT_TRANSACTIONS is retried");
            assert!(
                std::time::Instant::now() < deadline,
                "InitProducerId kept failing"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn call(&mut self, api: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
        self.correlation += 1;
        call(&mut self.s, api, version, self.correlation, &body)
    }

    /// Produce v12 (acks=all) of one transactional batch to `partition`; its error code.
    fn send(&mut self, partition: i32, (id, epoch): (i64, i16), seq: i32, value: &str) -> i16 {
        let batch = transactional_batch(&[value.as_bytes()], id, epoch, seq);
        let request = ProduceRequest::default()
            .with_transactional_id(Some(txn_id()))
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(Bytes::from(batch)))])]);
        let ResponseKind::Produce(r) = self.call(ApiKey::Produce, 12, request.into()) else {
            panic!("not a produce response");
        };
        r.responses[0].partition_responses[0].error_code
    }

    /// EndTxn v5 as (error, producer id, epoch); a success moves the producer on.
    fn end(&mut self, epoch: i16, commit: bool) -> (i16, i64, i16) {
        let request = EndTxnRequest::default()
            .with_transactional_id(txn_id())
            .with_producer_id(ProducerId(self.id))
            .with_producer_epoch(epoch)
            .with_committed(commit);
        let ResponseKind::EndTxn(r) = self.call(ApiKey::EndTxn, 5, request.into()) else {
            panic!("not an EndTxn response");
        };
        if r.error_code == 0 {
            (self.id, self.epoch) = (r.producer_id.0, r.producer_epoch);
        }
        (r.error_code, r.producer_id.0, r.producer_epoch)
    }

    /// TxnOffsetCommit v5 of `offset` for partition 0; its error code.
    fn commit_offset(&mut self, offset: i64) -> i16 {
        let request = TxnOffsetCommitRequest::default()
            .with_transactional_id(txn_id())
            .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
            .with_producer_id(ProducerId(self.id))
            .with_producer_epoch(self.epoch)
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)])]);
        let ResponseKind::TxnOffsetCommit(r) =
            self.call(ApiKey::TxnOffsetCommit, 5, request.into())
        else {
            panic!("not a TxnOffsetCommit response");
        };
        r.topics[0].partitions[0].error_code
    }
}

#[test]
fn a_version_2_producer_commits_aborts_and_a_late_batch_is_fenced_by_its_epoch() {
    let g = Gregor::start(&[]);
    let topic = common::topic_name("tv2");
    g.create_topic(&topic, 2);
    let mut p = Producer::connect(&g, &topic);

    // What a Java client decides by: the finalized level of transaction.version.
    let ask = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("gregor-test"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let ResponseKind::ApiVersions(versions) = p.call(ApiKey::ApiVersions, 3, ask.into()) else {
        panic!("not an ApiVersions response");
    };
    let finalized = versions
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .expect("transaction.version is finalized");
    assert_eq!(finalized.max_version_level, 2);

    p.init();
    let first = (p.id, p.epoch);

    // A committed transaction over both partitions and the group's offsets, with no
    // AddPartitionsToTxn or AddOffsetsToTxn.
    assert_eq!(p.send(0, first, 0, "c0"), 0);
    assert_eq!(p.send(1, first, 0, "c1"), 0);
    assert_eq!(p.commit_offset(42), 0);
    assert_eq!(p.end(first.1, true), (0, first.0, first.1 + 1));

    // A late retry of the committed transaction's batch is fenced by its epoch (here by the
    // coordinator, asked because no transaction is open in the partition).
    assert_eq!(p.send(0, first, 1, "late"), 47, "INVALID_PRODUCER_EPOCH");

    // An aborted transaction on the new epoch, whose EndTxn is retried.
    let second = (p.id, p.epoch);
    assert_eq!(p.send(0, second, 0, "a0"), 0);
    // With the new epoch's transaction open in partition 0, the partition's log itself refuses
    // the old epoch (the coordinator is not asked).
    assert_eq!(p.send(0, first, 2, "late"), 47, "INVALID_PRODUCER_EPOCH");
    assert_eq!(p.end(second.1, false), (0, second.0, second.1 + 1));
    assert_eq!(p.end(second.1, false), (0, second.0, second.1 + 1), "retry");

    // A third, committed: reading it proves the aborted record before it was passed over.
    let third = (p.id, p.epoch);
    assert_eq!(p.send(0, third, 0, "c2"), 0);
    assert_eq!(p.end(third.1, true), (0, third.0, third.1 + 1));

    let committed = g.consumer(&[("isolation.level", "read_committed")]);
    let mut read: Vec<String> = common::consume_from(&committed, &topic, &[0, 1], 3)
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect();
    read.sort();
    assert_eq!(read, ["c0", "c1", "c2"]);
    let everything = g.consumer(&[("isolation.level", "read_uncommitted")]);
    let all = common::consume_from(&everything, &topic, &[0], 3);
    let values: Vec<_> = all
        .iter()
        .map(|m| m.payload().unwrap_or_default())
        .collect();
    assert_eq!(
        values,
        [&b"c0"[..], b"a0", b"c2"],
        "the late batch was never stored"
    );

    // The offsets committed in the first transaction are the group's.
    let group = g.consumer(&[("group.id", GROUP)]);
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(&topic, 0);
    let offsets = group
        .committed_offsets(wanted, Duration::from_secs(30))
        .expect("committed offsets");
    let offset = offsets
        .find_partition(&topic, 0)
        .expect("partition 0")
        .offset();
    assert_eq!(offset, Offset::Offset(42));
}

/// A new instance of the producer fences the old one (its open transaction aborted, its writes
/// and its EndTxn refused), and a broker's batched AddPartitionsToTxn v5 verifies one
/// transaction and refuses another in the same request.
#[test]
fn a_new_instance_fences_the_zombie_and_a_broker_batch_is_answered_per_transaction() {
    let g = Gregor::start(&[]);
    let topic = common::topic_name("tv2z");
    g.create_topic(&topic, 2);
    let mut zombie = Producer::connect(&g, &topic);
    zombie.init();
    let old = (zombie.id, zombie.epoch);
    assert_eq!(zombie.send(0, old, 0, "z0"), 0);

    let batch = AddPartitionsToTxnRequest::default().with_transactions(vec![
        broker_txn(TXN, old, true, &topic, vec![0, 1]),
        broker_txn("never-initialised", old, false, &topic, vec![0]),
    ]);
    let ResponseKind::AddPartitionsToTxn(r) =
        zombie.call(ApiKey::AddPartitionsToTxn, 5, batch.into())
    else {
        panic!("not an AddPartitionsToTxn response");
    };
    let codes: Vec<(String, Vec<i16>)> = r
        .results_by_transaction
        .iter()
        .map(|t| {
            let codes = t.topic_results[0]
                .results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
                .collect();
            (t.transactional_id.to_string(), codes)
        })
        .collect();
    assert_eq!(
        codes,
        [
            // In the transaction, and not: TRANSACTION_ABORTABLE.
            (TXN.to_string(), vec![0, 120]),
            // INVALID_PRODUCER_ID_MAPPING.
            ("never-initialised".to_string(), vec![49]),
        ]
    );

    let mut successor = Producer::connect(&g, &topic);
    successor.init();
    assert_eq!(successor.id, old.0);
    assert!(
        successor.epoch > old.1 + 1,
        "the fence and the new instance each bumped"
    );
    assert_eq!(zombie.send(0, old, 1, "z1"), 47, "INVALID_PRODUCER_EPOCH");
    assert_eq!(zombie.end(old.1, true).0, 90, "PRODUCER_FENCED");

    let new = (successor.id, successor.epoch);
    assert_eq!(successor.send(1, new, 0, "s0"), 0);
    assert_eq!(successor.end(new.1, true), (0, new.0, new.1 + 1));
    let committed = g.consumer(&[("isolation.level", "read_committed")]);
    let read = common::consume_from(&committed, &topic, &[0, 1], 1);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].payload(), Some(&b"s0"[..]));
    // The zombie's record is stored, and aborted.
    let everything = g.consumer(&[("isolation.level", "read_uncommitted")]);
    let stored = common::consume_from(&everything, &topic, &[0], 1);
    assert_eq!(stored[0].payload(), Some(&b"z0"[..]));
}

/// One transaction of a broker's AddPartitionsToTxn v4+.
fn broker_txn(
    id: &str,
    (producer_id, epoch): (i64, i16),
    verify_only: bool,
    topic: &str,
    partitions: Vec<i32>,
) -> add_partitions_to_txn_request::AddPartitionsToTxnTransaction {
    add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_verify_only(verify_only)
        .with_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(partitions),
        ])
}
