//! Responses whose large byte fields are not in memory: a fetch's records lie in segment files
//! and go to the socket from there (`sendfile`). The response is encoded by proto-kafka as usual,
//! with each such field holding a [`placeholder`] of the right length; the encoding comes back
//! as [`Part`]s, the placeholders marking where the caller sends the data itself.
//!
//! A placeholder is a slice of one static, all-zero region that is never read: its pages stay
//! untouched, so they take no memory, and the encoder recognises a placeholder by its address.

use std::ops::Range;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use proto_kafka::protocol::buf::ByteBufMut;

/// The longest field a placeholder can stand for; longer data goes into the response itself.
pub const MAX_PLACEHOLDER: usize = 64 << 20;

static PLACEHOLDERS: [u8; MAX_PLACEHOLDER] = [0; MAX_PLACEHOLDER];

/// A stand-in of `len` bytes for a field whose data the caller sends itself; `None` if `len`
/// is over [`MAX_PLACEHOLDER`] (or 0: an empty field is encoded as it is).
pub fn placeholder(len: usize) -> Option<Bytes> {
    (len > 0 && len <= MAX_PLACEHOLDER).then(|| Bytes::from_static(&PLACEHOLDERS[..len]))
}

fn is_placeholder(bytes: &[u8]) -> bool {
    !bytes.is_empty() && std::ptr::eq(bytes.as_ptr(), PLACEHOLDERS.as_ptr())
}

/// A piece of an encoded response, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Part {
    Bytes(Bytes),
    /// Where a placeholder of this length was encoded: the caller sends that many bytes.
    Placeholder(usize),
}

/// A buffer that takes encoded bytes and records placeholders as gaps.
#[derive(Default)]
pub(crate) struct PartsBuf {
    done: Vec<Part>,
    current: BytesMut,
    /// Bytes before `current` (in `done`).
    before: usize,
}

impl PartsBuf {
    pub(crate) fn into_parts(mut self) -> Vec<Part> {
        if !self.current.is_empty() {
            self.done.push(Part::Bytes(self.current.freeze()));
        }
        self.done
    }
}

// SAFETY: every method forwards to `current`, a BytesMut, which upholds BufMut's contract.
unsafe impl BufMut for PartsBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of `chunk_mut`, which is `current`'s.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        self.current.put_slice(src);
    }
}

impl ByteBufMut for PartsBuf {
    fn offset(&self) -> usize {
        self.before + self.current.len()
    }

    /// Seeks within the bytes after the last placeholder (the encoder seeks back only to
    /// patch a length it wrote, never across a records field).
    fn seek(&mut self, offset: usize) {
        self.current.resize(offset.saturating_sub(self.before), 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        &mut self.current[r.start - self.before..r.end - self.before]
    }

    fn put_shared_bytes(&mut self, bytes: Bytes) {
        if !is_placeholder(&bytes) {
            self.current.put_slice(&bytes);
            return;
        }
        let written = std::mem::take(&mut self.current);
        self.before += written.len() + bytes.len();
        if !written.is_empty() {
            self.done.push(Part::Bytes(written.freeze()));
        }
        self.done.push(Part::Placeholder(bytes.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use crate::kafka::messages::{FetchResponse, TopicName};
    use crate::kafka::protocol::StrBytes;
    use crate::{encode_response, encode_response_parts, ApiKey};

    fn response(records: [Bytes; 2]) -> FetchResponse {
        let partitions = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(7)
                    .with_records(Some(r))
            })
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(partitions)])
    }

    /// Parts with their placeholders filled in from `data`, in order.
    fn assemble(parts: Vec<Part>, data: &[&[u8]]) -> Vec<u8> {
        let mut data = data.iter();
        let mut out = Vec::new();
        for part in parts {
            match part {
                Part::Bytes(b) => out.extend_from_slice(&b),
                Part::Placeholder(len) => {
                    let d = data.next().expect("data for each placeholder");
                    assert_eq!(d.len(), len);
                    out.extend_from_slice(d);
                }
            }
        }
        assert!(data.next().is_none());
        out
    }

    #[test]
    fn placeholders_come_back_where_their_data_belongs() {
        let a = vec![b'a'; 1000];
        let b = vec![b'b'; 3];
        for version in [4, 11, 12, 16] {
            let whole = encode_response(
                ApiKey::Fetch,
                version,
                9,
                &response([Bytes::from(a.clone()), Bytes::from(b.clone())]),
            )
            .unwrap();
            let placeholders = [placeholder(a.len()).unwrap(), placeholder(b.len()).unwrap()];
            let parts =
                encode_response_parts(ApiKey::Fetch, version, 9, &response(placeholders)).unwrap();
            assert_eq!(
                parts
                    .iter()
                    .filter(|p| matches!(p, Part::Placeholder(_)))
                    .count(),
                2
            );
            assert_eq!(assemble(parts, &[&a, &b]), whole, "v{version}");
        }
    }

    #[test]
    fn other_bytes_are_encoded_in_place() {
        let records = [Bytes::from_static(b"xyz"), Bytes::new()];
        let whole = encode_response(ApiKey::Fetch, 12, 1, &response(records.clone())).unwrap();
        let parts = encode_response_parts(ApiKey::Fetch, 12, 1, &response(records)).unwrap();
        assert_eq!(parts, vec![Part::Bytes(whole)]);
        assert_eq!(placeholder(0), None);
        assert_eq!(placeholder(MAX_PLACEHOLDER + 1), None);
    }
}
