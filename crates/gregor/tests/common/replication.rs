//! What the replication tests look at: partitions' leaders and ISRs as a broker's metadata
//! shows them, and replicas' logs batch for batch.

use std::path::Path;
use std::time::Duration;

use rdkafka::metadata::MetadataPartition;

use super::cluster::wait_until;
use super::Gregor;

/// What `of` takes from each partition of `topic` in `g`'s metadata.
fn each_partition<T>(g: &Gregor, topic: &str, of: impl Fn(&MetadataPartition) -> T) -> Vec<T> {
    let consumer = g.consumer(&[]);
    let md = rdkafka::consumer::Consumer::fetch_metadata(
        &consumer,
        Some(topic),
        Duration::from_secs(10),
    )
    .unwrap();
    md.topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(of)
        .collect()
}

/// (leader, ISR sorted) of each partition of `topic` in `g`'s metadata.
pub fn partitions_of(g: &Gregor, topic: &str) -> Vec<(i32, Vec<i32>)> {
    each_partition(g, topic, |p| {
        let mut isr = p.isr().to_vec();
        isr.sort_unstable();
        (p.leader(), isr)
    })
}

/// Each partition's replicas, in assignment order, in `g`'s metadata.
pub fn replicas_of(g: &Gregor, topic: &str) -> Vec<Vec<i32>> {
    each_partition(g, topic, |p| p.replicas().to_vec())
}

pub fn wait_for(g: &Gregor, topic: &str, what: &str, want: impl Fn(&[(i32, Vec<i32>)]) -> bool) {
    wait_until(what, Duration::from_secs(60), || {
        let got = partitions_of(g, topic);
        !got.is_empty() && want(&got)
    });
}

pub fn full_isr(partitions: &[(i32, Vec<i32>)]) -> bool {
    partitions
        .iter()
        .all(|(l, isr)| *l > 0 && isr == &[1, 2, 3])
}

/// Every record batch of a partition's log on one node, in order, as bytes: followers copy
/// batches as they are, so in-sync replicas hold the same bytes whatever their segments.
pub fn batches(node_dir: &Path, topic: &str, partition: i32) -> Vec<Vec<u8>> {
    let dir = node_dir.join(format!("{topic}-{partition}"));
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let mut out = Vec::new();
    for log in logs {
        let bytes = std::fs::read(&log).unwrap();
        let mut pos = 0;
        // A preallocated segment ends in zeros: a batch length of 0 is its end.
        while pos + 12 <= bytes.len() {
            let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
            if len == 0 || pos + 12 + len > bytes.len() {
                break;
            }
            out.push(bytes[pos..pos + 12 + len].to_vec());
            pos += 12 + len;
        }
    }
    out
}
