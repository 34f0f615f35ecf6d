//! The records of the internal topic `__consumer_offsets`.
//!
//! Every record has a key (what compaction keys on) and a value (`None` for tombstones).
//! Both are a 2-byte big-endian version followed by JSON:
//!
//! * offset keys use version 1 and hold `{group, topic, partition}`;
//! * group keys use version 2 and hold `{group}`;
//! * consumer group (KIP-848) keys use version 3 and hold `{group}`: the value is a snapshot of the
//!   whole group (epochs, members, subscriptions, current and target assignments);
//! * values use version 0.
//!
//! Decoding never panics: garbage yields a [`DecodeError`].

use bytes::Bytes;
use serde::{Deserialize, Serialize};

const OFFSET_KEY_VERSION: u16 = 1;
const GROUP_KEY_VERSION: u16 = 2;
const CONSUMER_GROUP_KEY_VERSION: u16 = 3;
const VALUE_VERSION: u16 = 0;

/// One record of the internal topic `__consumer_offsets`. [`GroupRecord::key`] is what compaction keys on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    /// A committed offset.
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: Option<String>,
        commit_timestamp: i64,
    },
    /// Tombstone of a committed offset.
    OffsetRemoved {
        group: String,
        topic: String,
        partition: i32,
    },
    /// The membership of a group's generation (written when a generation completes).
    GroupMetadata {
        group: String,
        protocol_type: Option<String>,
        generation: i32,
        protocol: Option<String>,
        leader: Option<String>,
        state_timestamp: i64,
        members: Vec<MemberRecord>,
    },
    /// Tombstone of a group.
    GroupRemoved { group: String },
    /// A snapshot of a consumer group of the KIP-848 protocol.
    ConsumerGroup {
        group: String,
        state: ConsumerGroupValue,
    },
    /// Tombstone of a consumer group's snapshot.
    ConsumerGroupRemoved { group: String },
}

/// The persisted state of a KIP-848 consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConsumerGroupValue {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// The subscribed topics as last seen (what a metadata change is compared with).
    #[serde(default)]
    pub topics: Vec<TopicMetadataRecord>,
    #[serde(default)]
    pub members: Vec<ConsumerMemberRecord>,
}

/// One subscribed topic of a [`ConsumerGroupValue`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadataRecord {
    pub name: String,
    pub id: uuid::Uuid,
    pub partitions: i32,
}

/// Partitions of one topic, by topic id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPartitionsRecord {
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<i32>,
}

/// One member of a [`ConsumerGroupValue`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConsumerMemberRecord {
    pub member_id: String,
    #[serde(default)]
    pub instance_id: Option<String>,
    #[serde(default)]
    pub rack_id: Option<String>,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    #[serde(default)]
    pub subscribed_topic_names: Vec<String>,
    #[serde(default)]
    pub subscribed_topic_regex: Option<String>,
    #[serde(default)]
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: u8,
    #[serde(default)]
    pub assigned: Vec<TopicPartitionsRecord>,
    #[serde(default)]
    pub pending_revocation: Vec<TopicPartitionsRecord>,
    #[serde(default)]
    pub target: Vec<TopicPartitionsRecord>,
}

/// One member of a [`GroupRecord::GroupMetadata`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The selected protocol's metadata (for the consumer protocol: the subscription).
    #[serde(with = "hex_bytes")]
    pub subscription: Bytes,
    #[serde(with = "hex_bytes")]
    pub assignment: Bytes,
}

/// Why a record of `__consumer_offsets` could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record key is shorter than its version")]
    ShortKey,
    #[error("unknown key version {0}")]
    UnknownKeyVersion(u16),
    #[error("unknown value version {0}")]
    UnknownValueVersion(u16),
    #[error("record value is shorter than its version")]
    ShortValue,
    #[error("malformed record: {0}")]
    Malformed(String),
}

#[derive(Serialize, Deserialize)]
struct OffsetKey {
    group: String,
    topic: String,
    partition: i32,
}

#[derive(Serialize, Deserialize)]
struct GroupKey {
    group: String,
}

#[derive(Serialize, Deserialize)]
struct OffsetValue {
    offset: i64,
    leader_epoch: i32,
    metadata: Option<String>,
    commit_timestamp: i64,
}

#[derive(Serialize, Deserialize)]
struct GroupValue {
    protocol_type: Option<String>,
    generation: i32,
    protocol: Option<String>,
    leader: Option<String>,
    state_timestamp: i64,
    members: Vec<MemberRecord>,
}

fn versioned<T: Serialize>(version: u16, body: &T) -> Vec<u8> {
    let mut out = version.to_be_bytes().to_vec();
    // Serialising these plain structs to JSON cannot fail (string keys, no maps with non-string keys).
    out.extend(serde_json::to_vec(body).unwrap_or_default());
    out
}

impl GroupRecord {
    /// The group this record belongs to.
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::OffsetCommit { group, .. }
            | GroupRecord::OffsetRemoved { group, .. }
            | GroupRecord::GroupMetadata { group, .. }
            | GroupRecord::GroupRemoved { group }
            | GroupRecord::ConsumerGroup { group, .. }
            | GroupRecord::ConsumerGroupRemoved { group } => group,
        }
    }

    /// The compaction key: distinct per (group, topic, partition) for offsets and per group for metadata.
    pub fn key(&self) -> Vec<u8> {
        match self {
            GroupRecord::OffsetCommit {
                group,
                topic,
                partition,
                ..
            }
            | GroupRecord::OffsetRemoved {
                group,
                topic,
                partition,
            } => versioned(
                OFFSET_KEY_VERSION,
                &OffsetKey {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                },
            ),
            GroupRecord::GroupMetadata { group, .. } | GroupRecord::GroupRemoved { group } => {
                versioned(
                    GROUP_KEY_VERSION,
                    &GroupKey {
                        group: group.clone(),
                    },
                )
            }
            GroupRecord::ConsumerGroup { group, .. }
            | GroupRecord::ConsumerGroupRemoved { group } => versioned(
                CONSUMER_GROUP_KEY_VERSION,
                &GroupKey {
                    group: group.clone(),
                },
            ),
        }
    }

    /// The value; `None` for tombstones.
    pub fn value(&self) -> Option<Vec<u8>> {
        match self {
            GroupRecord::OffsetCommit {
                offset,
                leader_epoch,
                metadata,
                commit_timestamp,
                ..
            } => Some(versioned(
                VALUE_VERSION,
                &OffsetValue {
                    offset: *offset,
                    leader_epoch: *leader_epoch,
                    metadata: metadata.clone(),
                    commit_timestamp: *commit_timestamp,
                },
            )),
            GroupRecord::GroupMetadata {
                protocol_type,
                generation,
                protocol,
                leader,
                state_timestamp,
                members,
                ..
            } => Some(versioned(
                VALUE_VERSION,
                &GroupValue {
                    protocol_type: protocol_type.clone(),
                    generation: *generation,
                    protocol: protocol.clone(),
                    leader: leader.clone(),
                    state_timestamp: *state_timestamp,
                    members: members.clone(),
                },
            )),
            GroupRecord::ConsumerGroup { state, .. } => Some(versioned(VALUE_VERSION, state)),
            GroupRecord::OffsetRemoved { .. }
            | GroupRecord::GroupRemoved { .. }
            | GroupRecord::ConsumerGroupRemoved { .. } => None,
        }
    }

    /// Decodes a record from its key and value. Never panics on garbage.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, DecodeError> {
        if key.len() < 2 {
            return Err(DecodeError::ShortKey);
        }
        let key_version = u16::from_be_bytes([key[0], key[1]]);
        let key_body = &key[2..];
        let value_body = match value {
            None => None,
            Some(v) => {
                if v.len() < 2 {
                    return Err(DecodeError::ShortValue);
                }
                let version = u16::from_be_bytes([v[0], v[1]]);
                if version != VALUE_VERSION {
                    return Err(DecodeError::UnknownValueVersion(version));
                }
                Some(&v[2..])
            }
        };
        let malformed = |e: serde_json::Error| DecodeError::Malformed(e.to_string());
        match key_version {
            OFFSET_KEY_VERSION => {
                let k: OffsetKey = serde_json::from_slice(key_body).map_err(malformed)?;
                match value_body {
                    None => Ok(GroupRecord::OffsetRemoved {
                        group: k.group,
                        topic: k.topic,
                        partition: k.partition,
                    }),
                    Some(body) => {
                        let v: OffsetValue = serde_json::from_slice(body).map_err(malformed)?;
                        Ok(GroupRecord::OffsetCommit {
                            group: k.group,
                            topic: k.topic,
                            partition: k.partition,
                            offset: v.offset,
                            leader_epoch: v.leader_epoch,
                            metadata: v.metadata,
                            commit_timestamp: v.commit_timestamp,
                        })
                    }
                }
            }
            GROUP_KEY_VERSION => {
                let k: GroupKey = serde_json::from_slice(key_body).map_err(malformed)?;
                match value_body {
                    None => Ok(GroupRecord::GroupRemoved { group: k.group }),
                    Some(body) => {
                        let v: GroupValue = serde_json::from_slice(body).map_err(malformed)?;
                        Ok(GroupRecord::GroupMetadata {
                            group: k.group,
                            protocol_type: v.protocol_type,
                            generation: v.generation,
                            protocol: v.protocol,
                            leader: v.leader,
                            state_timestamp: v.state_timestamp,
                            members: v.members,
                        })
                    }
                }
            }
            CONSUMER_GROUP_KEY_VERSION => {
                let k: GroupKey = serde_json::from_slice(key_body).map_err(malformed)?;
                match value_body {
                    None => Ok(GroupRecord::ConsumerGroupRemoved { group: k.group }),
                    Some(body) => Ok(GroupRecord::ConsumerGroup {
                        group: k.group,
                        state: serde_json::from_slice(body).map_err(malformed)?,
                    }),
                }
            }
            other => Err(DecodeError::UnknownKeyVersion(other)),
        }
    }
}

/// Serde for `Bytes` as a lowercase hex string.
mod hex_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes.iter() {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s.as_bytes();
        if digits.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        let nibble = |c: u8| -> Result<u8, D::Error> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                _ => Err(serde::de::Error::custom("invalid hex digit")),
            }
        };
        let mut out = Vec::with_capacity(digits.len() / 2);
        for pair in digits.chunks(2) {
            out.push((nibble(pair[0])? << 4) | nibble(pair[1])?);
        }
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> Vec<GroupRecord> {
        vec![
            GroupRecord::OffsetCommit {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                offset: 42,
                leader_epoch: 7,
                metadata: Some("meta".into()),
                commit_timestamp: 1000,
            },
            GroupRecord::OffsetRemoved {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
            },
            GroupRecord::GroupMetadata {
                group: "g".into(),
                protocol_type: Some("consumer".into()),
                generation: 4,
                protocol: Some("range".into()),
                leader: Some("m1".into()),
                state_timestamp: 99,
                members: vec![MemberRecord {
                    member_id: "m1".into(),
                    group_instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300000,
                    session_timeout_ms: 10000,
                    subscription: Bytes::from_static(&[0, 1, 0xff]),
                    assignment: Bytes::new(),
                }],
            },
            GroupRecord::GroupRemoved { group: "g".into() },
            GroupRecord::ConsumerGroup {
                group: "g".into(),
                state: ConsumerGroupValue {
                    group_epoch: 3,
                    assignment_epoch: 3,
                    topics: vec![TopicMetadataRecord {
                        name: "t".into(),
                        id: uuid::Uuid::from_u128(7),
                        partitions: 4,
                    }],
                    members: vec![ConsumerMemberRecord {
                        member_id: "m".into(),
                        rebalance_timeout_ms: 1000,
                        subscribed_topic_names: vec!["t".into()],
                        member_epoch: 3,
                        previous_member_epoch: 2,
                        state: 1,
                        assigned: vec![TopicPartitionsRecord {
                            topic_id: uuid::Uuid::from_u128(7),
                            partitions: vec![0, 1],
                        }],
                        ..Default::default()
                    }],
                },
            },
            GroupRecord::ConsumerGroupRemoved { group: "g".into() },
        ]
    }

    #[test]
    fn round_trip() {
        for r in samples() {
            let key = r.key();
            let value = r.value();
            let back = GroupRecord::decode(&key, value.as_deref()).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn keys_pair_with_tombstones() {
        let s = samples();
        assert_eq!(s[0].key(), s[1].key());
        assert_eq!(s[2].key(), s[3].key());
        assert_ne!(s[0].key(), s[2].key());
        assert_eq!(s[4].key(), s[5].key());
        assert_ne!(s[4].key(), s[2].key());
        assert!(s[5].value().is_none());
        assert!(s[1].value().is_none() && s[3].value().is_none());
        let other_partition = GroupRecord::OffsetRemoved {
            group: "g".into(),
            topic: "t".into(),
            partition: 4,
        };
        assert_ne!(other_partition.key(), s[1].key());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(GroupRecord::decode(&[], None).is_err());
        assert!(GroupRecord::decode(&[0, 1], None).is_err());
        assert!(GroupRecord::decode(&[0, 9, b'{', b'}'], None).is_err());
        let key = samples()[0].key();
        assert!(GroupRecord::decode(&key, Some(&[0])).is_err());
        assert!(GroupRecord::decode(&key, Some(&[0, 0, b'['])).is_err());
        let gkey = samples()[2].key();
        let bad_hex = br#"{"protocol_type":null,"generation":1,"protocol":null,"leader":null,"state_timestamp":0,"members":[{"member_id":"m","group_instance_id":null,"client_id":"c","client_host":"h","rebalance_timeout_ms":1,"session_timeout_ms":1,"subscription":"abc","assignment":""}]}"#;
        let mut v = vec![0, 0];
        v.extend_from_slice(bad_hex);
        assert!(GroupRecord::decode(&gkey, Some(&v)).is_err());
    }

    /// A record decoded from any bytes is whole: it encodes again and decodes to itself.
    fn assert_whole(key: &[u8], value: Option<&[u8]>) -> Result<(), TestCaseError> {
        if let Ok(record) = GroupRecord::decode(key, value) {
            let again = GroupRecord::decode(&record.key(), record.value().as_deref());
            prop_assert_eq!(again, Ok(record));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn records_decoded_from_any_bytes_are_whole(key in proptest::collection::vec(any::<u8>(), 0..64),
                               value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..128))) {
            assert_whole(&key, value.as_deref())?;
        }

        /// Every sample survives encoding; mutated, it is refused or decodes to a whole record.
        #[test]
        fn mutated_records_are_refused_or_whole(idx in 0usize..6, pos in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
            let r = &samples()[idx];
            let mut key = r.key();
            let mut value = r.value();
            prop_assert_eq!(GroupRecord::decode(&key, value.as_deref()), Ok(r.clone()));
            if let Some(v) = value.as_mut() {
                let p = pos % v.len();
                v[p] = byte;
                v.truncate(cut % (v.len() + 1));
            } else {
                let p = pos % key.len();
                key[p] = byte;
            }
            assert_whole(&key, value.as_deref())?;
        }
    }
}
