//! `--describe-producers`, `--find-hanging` and `--abort`: the partition-leader side of
//! kafka-transactions.sh. A transaction hangs when a partition has it open (it bounds the last
//! stable offset, so read_committed consumers stop there) but no coordinator will ever end it;
//! an operator finds it from the partitions' producer state and aborts it with a marker written
//! by the partition leader, as the coordinator would have.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use gregor_protocol::kafka::messages::describe_producers_request::TopicRequest;
use gregor_protocol::kafka::messages::describe_producers_response::ProducerState;
use gregor_protocol::kafka::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use gregor_protocol::kafka::messages::{
    DescribeProducersRequest, DescribeProducersResponse, ListTransactionsRequest,
    ListTransactionsResponse, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::kafka::ResponseError;
use gregor_protocol::ApiKey;
use rdkafka::metadata::Metadata;
use serde_json::json;

use super::{describe_transaction, Args};
use crate::cli::common::{emit, table, Output};
use crate::cli::wire;

type Partition = (String, i32);

pub(super) fn run(args: &Args, md: &Metadata, timeout: Duration) -> anyhow::Result<()> {
    if args.find_hanging {
        return find_hanging(args, md, timeout);
    }
    let partition = (
        args.topic.clone().unwrap_or_default(),
        args.partition.unwrap_or_default(),
    );
    let leader = leader_of(md, &partition)?;
    let producers = describe_producers(md, leader, std::slice::from_ref(&partition), timeout)?
        .remove(&partition)
        .unwrap_or_default();
    if args.abort {
        let start = args.start_offset.unwrap_or_default();
        let producer = producers
            .iter()
            .find(|p| p.current_txn_start_offset == start)
            .with_context(|| {
                format!(
                    "no open transaction starts at offset {start} of {}-{}",
                    partition.0, partition.1
                )
            })?;
        return abort(md, leader, &partition, producer, timeout);
    }
    let rows: Vec<Vec<String>> = producers
        .iter()
        .map(|p| {
            vec![
                p.producer_id.0.to_string(),
                p.producer_epoch.to_string(),
                p.coordinator_epoch.to_string(),
                p.last_sequence.to_string(),
                p.last_timestamp.to_string(),
                optional(p.current_txn_start_offset),
            ]
        })
        .collect();
    match args.output {
        Output::Json => {
            let list: Vec<_> = producers
                .iter()
                .map(|p| {
                    json!({
                        "producer_id": p.producer_id.0, "producer_epoch": p.producer_epoch,
                        "coordinator_epoch": p.coordinator_epoch, "last_sequence": p.last_sequence,
                        "last_timestamp": p.last_timestamp,
                        "current_transaction_start_offset": p.current_txn_start_offset,
                    })
                })
                .collect();
            emit(&format!("{}\n", serde_json::Value::from(list)))
        }
        Output::Table => emit(&table(
            &[
                "PRODUCER-ID",
                "PRODUCER-EPOCH",
                "LATEST-COORDINATOR-EPOCH",
                "LAST-SEQUENCE",
                "LAST-TIMESTAMP",
                "CURRENT-TRANSACTION-START-OFFSET",
            ],
            &rows,
        )),
    }
}

fn optional(v: i64) -> String {
    if v < 0 {
        "None".into()
    } else {
        v.to_string()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn leader_of(md: &Metadata, (topic, index): &Partition) -> anyhow::Result<i32> {
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .with_context(|| format!("topic {topic} does not exist"))?;
    let p = t
        .partitions()
        .iter()
        .find(|p| p.id() == *index)
        .with_context(|| format!("topic {topic} has no partition {index}"))?;
    Ok(p.leader())
}

fn address(md: &Metadata, broker: i32) -> anyhow::Result<(&str, u16)> {
    let b = md
        .brokers()
        .iter()
        .find(|b| b.id() == broker)
        .with_context(|| format!("broker {broker} is not in the cluster"))?;
    Ok((b.host(), b.port() as u16))
}

/// The producer state of `partitions` (all led by `broker`).
fn describe_producers(
    md: &Metadata,
    broker: i32,
    partitions: &[Partition],
    timeout: Duration,
) -> anyhow::Result<BTreeMap<Partition, Vec<ProducerState>>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, index) in partitions {
        by_topic.entry(topic).or_default().push(*index);
    }
    let request = DescribeProducersRequest::default().with_topics(
        by_topic
            .into_iter()
            .map(|(topic, indexes)| {
                TopicRequest::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_indexes(indexes)
            })
            .collect(),
    );
    let response: DescribeProducersResponse = wire::call(
        address(md, broker)?,
        ApiKey::DescribeProducers,
        0,
        &request,
        timeout,
    )
    .with_context(|| format!("broker {broker}"))?;
    let mut out = BTreeMap::new();
    for t in response.topics {
        for p in t.partitions {
            if p.error_code != 0 {
                bail!(
                    "cannot describe the producers of {}-{}: {}",
                    t.name.as_str(),
                    p.partition_index,
                    p.error_message.as_deref().unwrap_or("error")
                );
            }
            out.insert((t.name.to_string(), p.partition_index), p.active_producers);
        }
    }
    Ok(out)
}

/// Writes an abort marker for `producer` into `partition` on its leader.
fn abort(
    md: &Metadata,
    leader: i32,
    (topic, index): &Partition,
    producer: &ProducerState,
    timeout: Duration,
) -> anyhow::Result<()> {
    let epoch = i16::try_from(producer.producer_epoch).context("producer epoch out of range")?;
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(producer.producer_id)
            .with_producer_epoch(epoch)
            .with_transaction_result(false)
            .with_coordinator_epoch(producer.coordinator_epoch.max(0))
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.clone())))
                .with_partition_indexes(vec![*index])])]);
    let response: WriteTxnMarkersResponse = wire::call(
        address(md, leader)?,
        ApiKey::WriteTxnMarkers,
        1,
        &request,
        timeout,
    )?;
    let code = response
        .markers
        .iter()
        .flat_map(|m| &m.topics)
        .flat_map(|t| &t.partitions)
        .map(|p| p.error_code)
        .next()
        .context("the broker answered no result")?;
    if code != 0 {
        let name = ResponseError::try_from_code(code).map_or(code.to_string(), |e| e.to_string());
        bail!("the abort marker was not written: {name}");
    }
    emit(&format!(
        "Aborted the transaction of producer {} (epoch {epoch}) in {topic}-{index}\n",
        producer.producer_id.0
    ))
}

/// Open transactions, in the partitions `--broker-id` leads, older than
/// `--max-transaction-timeout`, that no coordinator knows as ongoing with that partition.
fn find_hanging(args: &Args, md: &Metadata, timeout: Duration) -> anyhow::Result<()> {
    let broker = args.broker_id.unwrap_or_default();
    address(md, broker)?;
    let led: Vec<Partition> = md
        .topics()
        .iter()
        .flat_map(|t| {
            t.partitions()
                .iter()
                .filter(|p| p.leader() == broker)
                .map(|p| (t.name().to_string(), p.id()))
        })
        .collect();
    let now = now_ms();
    let min_age = args.max_transaction_timeout.saturating_mul(60_000);
    let candidates: Vec<(Partition, ProducerState)> = if led.is_empty() {
        Vec::new()
    } else {
        describe_producers(md, broker, &led, timeout)?
            .into_iter()
            .flat_map(|(partition, producers)| {
                producers.into_iter().map(move |p| (partition.clone(), p))
            })
            .filter(|(_, p)| p.current_txn_start_offset >= 0 && now - p.last_timestamp >= min_age)
            .collect()
    };
    let mut hanging = Vec::new();
    for (partition, producer) in candidates {
        if !coordinator_has_it_open(md, &partition, &producer, timeout)? {
            hanging.push((partition, producer));
        }
    }
    let rows: Vec<Vec<String>> = hanging
        .iter()
        .map(|((topic, index), p)| {
            vec![
                topic.clone(),
                index.to_string(),
                p.producer_id.0.to_string(),
                p.producer_epoch.to_string(),
                p.coordinator_epoch.to_string(),
                p.current_txn_start_offset.to_string(),
                p.last_timestamp.to_string(),
                ((now - p.last_timestamp) / 60_000).to_string(),
            ]
        })
        .collect();
    match args.output {
        Output::Json => {
            let list: Vec<_> = hanging
                .iter()
                .map(|((topic, index), p)| {
                    json!({
                        "topic": topic, "partition": index, "producer_id": p.producer_id.0,
                        "producer_epoch": p.producer_epoch,
                        "coordinator_epoch": p.coordinator_epoch,
                        "start_offset": p.current_txn_start_offset,
                        "last_timestamp": p.last_timestamp,
                    })
                })
                .collect();
            emit(&format!("{}\n", serde_json::Value::from(list)))
        }
        Output::Table => emit(&table(
            &[
                "TOPIC",
                "PARTITION",
                "PRODUCER-ID",
                "PRODUCER-EPOCH",
                "COORDINATOR-EPOCH",
                "START-OFFSET",
                "LAST-TIMESTAMP",
                "DURATION(MIN)",
            ],
            &rows,
        )),
    }
}

/// Whether some coordinator has `producer`'s transaction ongoing with `partition` (so it will end
/// it): the producer id's transactional ids from every broker, then their descriptions.
fn coordinator_has_it_open(
    md: &Metadata,
    (topic, index): &Partition,
    producer: &ProducerState,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let list = ListTransactionsRequest::default()
        .with_producer_id_filters(vec![producer.producer_id])
        .with_duration_filter(-1);
    for b in md.brokers() {
        let listed: ListTransactionsResponse = wire::call(
            (b.host(), b.port() as u16),
            ApiKey::ListTransactions,
            1,
            &list,
            timeout,
        )?;
        for t in listed.transaction_states {
            let (_, s) =
                describe_transaction((b.host(), b.port() as u16), &t.transactional_id, timeout)?;
            let open = s.error_code == 0
                && s.producer_id == producer.producer_id
                && s.transaction_state.as_str() == "Ongoing"
                && s.topics
                    .iter()
                    .any(|tp| tp.topic.as_str() == topic && tp.partitions.contains(index));
            if open {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
