//! Property-based fuzzing of request decoding: random frames and mutations of valid frames must
//! decode or fail with an error, never panic, and never allocate more than a bounded multiple of
//! the frame (the `kafka-protocol` crate allocated 154 GB for a 4-byte body).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use gregor_protocol::kafka::messages::{MetadataRequest, RequestHeader, RequestKind};
use gregor_protocol::kafka::protocol::Encodable;
use gregor_protocol::{decode_request, versions, ApiKey};
use proptest::prelude::*;

struct Recording;

static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Recording = Recording;

/// Frames here are at most 4 KiB; no decoded structure may need more than this.
const ALLOCATION_CEILING: usize = 16 << 20;

fn frame<R: Encodable>(api: ApiKey, version: i16, body: &R) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some("fuzz".to_string().into()));
    header
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

/// A request of `api` with every field at its default.
fn default_request(api: ApiKey) -> RequestKind {
    macro_rules! defaults {
        ($($kind:ident),* $(,)?) => {
            match api {
                $(ApiKey::$kind => RequestKind::$kind(Default::default()),)*
                other => panic!("{other:?} is supported: give it a seed here"),
            }
        };
    }
    defaults!(
        Produce,
        Fetch,
        ListOffsets,
        OffsetForLeaderEpoch,
        Metadata,
        FindCoordinator,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        InitProducerId,
        DeleteRecords,
        AlterReplicaLogDirs,
        DescribeLogDirs,
        DescribeConfigs,
        AlterConfigs,
        IncrementalAlterConfigs,
        CreatePartitions,
        DescribeCluster,
        UpdateFeatures,
        JoinGroup,
        SyncGroup,
        Heartbeat,
        LeaveGroup,
        OffsetCommit,
        OffsetFetch,
        DescribeGroups,
        ListGroups,
        DeleteGroups,
        OffsetDelete,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        TxnOffsetCommit,
        DescribeTransactions,
        ListTransactions,
        DescribeProducers,
        GetTelemetrySubscriptions,
        PushTelemetry,
        ListConfigResources,
        WriteTxnMarkers,
        DescribeQuorum,
        UnregisterBroker,
        ElectLeaders,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        AddRaftVoter,
        RemoveRaftVoter,
    )
}

/// A default request of every supported API at its lowest and highest decodable version:
/// (api, version, the request, its frame).
fn seeds() -> Vec<(ApiKey, i16, RequestKind, Vec<u8>)> {
    let mut out = Vec::new();
    for &(api, min, max) in versions::SUPPORTED {
        // Produce v0-2 are advertised (KAFKA-18659) but refused.
        let lowest = (min..=max)
            .find(|&v| versions::decodable(api, v))
            .expect("a decodable version");
        for version in [lowest, max] {
            let request = default_request(api);
            let mut buf = BytesMut::new();
            RequestHeader::default()
                .with_request_api_key(api as i16)
                .with_request_api_version(version)
                .with_correlation_id(7)
                .with_client_id(Some("fuzz".to_string().into()))
                .encode(&mut buf, api.request_header_version(version))
                .unwrap();
            request.encode(&mut buf, version).unwrap();
            out.push((api, version, request, buf.to_vec()));
        }
    }
    out
}

/// Decodes `bytes`, which must not panic nor allocate beyond the ceiling; what decodes must
/// encode again at its version and decode to the same request (no half-read structure passes).
fn decode_checked(bytes: Vec<u8>) {
    if let Ok(request) = decode_request(Bytes::from(bytes)) {
        let version = request.header.request_api_version;
        let mut again = BytesMut::new();
        request
            .header
            .encode(&mut again, request.api_key.request_header_version(version))
            .expect("a decoded header encodes");
        request
            .body
            .encode(&mut again, version)
            .expect("a decoded request encodes");
        let decoded = decode_request(again.freeze()).expect("a re-encoded request decodes");
        assert_eq!(decoded.body, request.body);
    }
    let largest = LARGEST_ALLOCATION.load(Ordering::Relaxed);
    assert!(
        largest < ALLOCATION_CEILING,
        "decoding allocated {largest} bytes"
    );
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    /// Writes a large length (i32 or varint-ish) at a position.
    BigLength(usize, [u8; 4]),
    Truncate(usize),
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<usize>(),
            prop_oneof![
                Just([0x7f, 0xff, 0xff, 0xff]),
                Just([0xff, 0xff, 0xff, 0x0f]),
                Just([0x00, 0x10, 0x00, 0x00]),
                any::<[u8; 4]>()
            ]
        )
            .prop_map(|(i, b)| Mutation::BigLength(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        match m {
            Mutation::Flip(i, b) => {
                let i = i % bytes.len();
                bytes[i] ^= b;
            }
            Mutation::BigLength(i, b) => {
                let i = i % bytes.len();
                for (k, byte) in b.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(i + k) {
                        *slot = *byte;
                    }
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % bytes.len()),
            Mutation::Insert(i, extra) => {
                let i = i % bytes.len();
                bytes.splice(i..i, extra.iter().copied());
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("GREGOR_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000)
    ))]

    #[test]
    fn random_frames_never_panic(api in 0i16..100, version in -1i16..20, body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = Vec::with_capacity(body.len() + 8);
        bytes.extend_from_slice(&api.to_be_bytes());
        bytes.extend_from_slice(&version.to_be_bytes());
        bytes.extend_from_slice(&1i32.to_be_bytes());
        bytes.extend_from_slice(&body);
        decode_checked(bytes);
    }

    #[test]
    fn mutated_valid_frames_never_panic(seed in 0usize..1000, mutations in proptest::collection::vec(mutation(), 1..6)) {
        let seeds = seeds();
        let base = seeds[seed % seeds.len()].3.clone();
        decode_checked(apply(base, &mutations));
    }
}

/// The input that aborted a process using the `kafka-protocol` crate: a Metadata v12 frame whose
/// topics array claims 0x7fffffff entries.
#[test]
fn huge_array_length_is_an_error() {
    let mut bytes = frame(ApiKey::Metadata, 4, &MetadataRequest::default());
    let body_at = bytes.len() - 5; // topics array (i32) + allow_auto_topic_creation (bool)
    bytes[body_at..body_at + 4].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
    assert!(decode_request(Bytes::from(bytes)).is_err());
}

#[test]
fn every_supported_api_decodes_at_its_lowest_and_highest_version() {
    let seeds = seeds();
    assert_eq!(seeds.len(), 2 * versions::SUPPORTED.len());
    for (api, version, request, frame) in seeds {
        let decoded = decode_request(Bytes::from(frame))
            .unwrap_or_else(|e| panic!("{api:?} v{version}: {e}"));
        assert_eq!(decoded.api_key, api);
        assert_eq!(decoded.body, request, "{api:?} v{version}");
    }
}
