//! The records of the internal topic `__transaction_state`.
//!
//! The key is the transactional id (what compaction keys on); the value is its
//! [`TxnMetadata`], or `None` for a tombstone once the id expired. Both are a 2-byte big-endian
//! version (0) followed by JSON.
//!
//! Decoding never panics: garbage yields a [`DecodeError`].

use serde::{Deserialize, Serialize};

use crate::metadata::TxnMetadata;

const KEY_VERSION: u16 = 0;
const VALUE_VERSION: u16 = 0;

/// One record of `__transaction_state`: the metadata of a transactional id, or its tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub metadata: Option<TxnMetadata>,
}

/// Why a record of `__transaction_state` could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record key is shorter than its version")]
    ShortKey,
    #[error("unknown key version {0}")]
    UnknownKeyVersion(u16),
    #[error("record value is shorter than its version")]
    ShortValue,
    #[error("unknown value version {0}")]
    UnknownValueVersion(u16),
    #[error("malformed record: {0}")]
    Malformed(String),
}

#[derive(Serialize, Deserialize)]
struct TxnKey {
    transactional_id: String,
}

fn versioned<T: Serialize>(version: u16, body: &T) -> Vec<u8> {
    let mut out = version.to_be_bytes().to_vec();
    // Serialising these plain structs to JSON cannot fail (no maps with non-string keys).
    out.extend(serde_json::to_vec(body).unwrap_or_default());
    out
}

/// Splits the 2-byte big-endian version from the JSON body; `None` if too short.
fn split_version(bytes: &[u8]) -> Option<(u16, &[u8])> {
    match bytes {
        [hi, lo, body @ ..] => Some((u16::from_be_bytes([*hi, *lo]), body)),
        _ => None,
    }
}

impl TxnRecord {
    /// The compaction key: the transactional id.
    pub fn key(&self) -> Vec<u8> {
        versioned(
            KEY_VERSION,
            &TxnKey {
                transactional_id: self.transactional_id.clone(),
            },
        )
    }

    /// The value; `None` for tombstones.
    pub fn value(&self) -> Option<Vec<u8>> {
        self.metadata.as_ref().map(|m| versioned(VALUE_VERSION, m))
    }

    /// Decodes a record from its key and value. Never panics on garbage.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<TxnRecord, DecodeError> {
        let malformed = |e: serde_json::Error| DecodeError::Malformed(e.to_string());
        let (key_version, key_body) = split_version(key).ok_or(DecodeError::ShortKey)?;
        if key_version != KEY_VERSION {
            return Err(DecodeError::UnknownKeyVersion(key_version));
        }
        let TxnKey { transactional_id } = serde_json::from_slice(key_body).map_err(malformed)?;
        let metadata = match value {
            None => None,
            Some(v) => {
                let (version, body) = split_version(v).ok_or(DecodeError::ShortValue)?;
                if version != VALUE_VERSION {
                    return Err(DecodeError::UnknownValueVersion(version));
                }
                Some(serde_json::from_slice(body).map_err(malformed)?)
            }
        };
        Ok(TxnRecord {
            transactional_id,
            metadata,
        })
    }
}
