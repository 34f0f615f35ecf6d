//! Just enough of the consumer protocol's subscription metadata (ConsumerProtocolSubscription)
//! to know which topics a member subscribes to. Malformed bytes yield `None`, never a panic.

use std::collections::BTreeSet;

/// The protocol type of consumer groups.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topics of a ConsumerProtocolSubscription (any version: all start with
/// `version: int16, topics: [string]`), or `None` when the bytes are malformed.
pub fn subscribed_topics(metadata: &[u8]) -> Option<BTreeSet<String>> {
    let mut cur = Cursor { buf: metadata };
    let version = cur.i16()?;
    if version < 0 {
        return None;
    }
    let count = cur.i32()?;
    if count < 0 {
        return None;
    }
    let mut topics = BTreeSet::new();
    for _ in 0..count {
        let len = cur.i16()?;
        if len < 0 {
            return None;
        }
        let raw = cur.take(len as usize)?;
        topics.insert(std::str::from_utf8(raw).ok()?.to_string());
    }
    Some(topics)
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        let b = self.take(2)?;
        Some(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        let b = self.take(4)?;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Encodes a version-0 subscription (tests and tools).
pub fn encode_subscription(topics: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0i16.to_be_bytes());
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        out.extend_from_slice(&(t.len() as i16).to_be_bytes());
        out.extend_from_slice(t.as_bytes());
    }
    out.extend_from_slice(&(-1i32).to_be_bytes()); // null user data
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_topics() {
        let bytes = encode_subscription(&["a", "bb"]);
        let topics = subscribed_topics(&bytes).unwrap();
        assert_eq!(topics.into_iter().collect::<Vec<_>>(), vec!["a", "bb"]);
        assert!(subscribed_topics(&bytes[..5]).is_none());
        assert!(subscribed_topics(&[]).is_none());
    }

    /// Every version starts the same way (clients send v1 and later); a negative one is garbage.
    #[test]
    fn later_versions_are_read_and_negative_ones_refused() {
        let mut bytes = encode_subscription(&["a", "b"]);
        for version in [1i16, 3] {
            bytes[..2].copy_from_slice(&version.to_be_bytes());
            assert_eq!(
                subscribed_topics(&bytes),
                Some(BTreeSet::from(["a".to_string(), "b".to_string()])),
                "v{version}"
            );
        }
        bytes[..2].copy_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(subscribed_topics(&bytes), None);
    }

    #[test]
    fn an_empty_topic_name_is_read_as_written() {
        let bytes = encode_subscription(&["", "a"]);
        assert_eq!(
            subscribed_topics(&bytes),
            Some(BTreeSet::from([String::new(), "a".to_string()]))
        );
    }

    proptest! {
        /// What comes out of arbitrary bytes was in them.
        #[test]
        fn topics_read_from_any_bytes_are_in_them(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            for topic in subscribed_topics(&bytes).unwrap_or_default() {
                prop_assert!(
                    topic.is_empty() || bytes.windows(topic.len()).any(|w| w == topic.as_bytes()),
                    "{topic:?} not in {bytes:?}"
                );
            }
        }

        /// A subscription reads back as its topics; cut anywhere inside its topics, it is refused.
        #[test]
        fn subscriptions_round_trip_and_truncations_are_refused(
            topics in proptest::collection::vec("[a-z0-9._-]{1,20}", 0..6),
            cut in any::<usize>(),
        ) {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            let bytes = encode_subscription(&names);
            let expected: BTreeSet<String> = topics.iter().cloned().collect();
            prop_assert_eq!(subscribed_topics(&bytes), Some(expected));
            let topics_end = bytes.len() - 4; // the user data follows the topics
            prop_assert_eq!(subscribed_topics(&bytes[..cut % topics_end]), None);
            // The topics are all it needs: what follows them may be missing.
            prop_assert_eq!(subscribed_topics(&bytes[..topics_end]), Some(topics.iter().cloned().collect()));
        }
    }
}
