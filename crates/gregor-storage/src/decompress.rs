//! A batch's records section as a stream of decompressed bytes, in memory bounded whatever the
//! data claims: gzip, lz4 and zstd are read through their streaming decoders; snappy (a block
//! format) is inflated block by block, each block refused if it claims more than snappy can
//! expand to (about 21x). proto-kafka's decoders instead inflate a whole batch into one buffer,
//! so a small batch could make the broker allocate gigabytes.

use std::io::{BufRead, BufReader, Cursor, Read};

use crate::error::{Result, StorageError};

/// The Java client's snappy framing (snappy-java's "xerial" stream): magic, version 1,
/// compatible version 1, then blocks each prefixed by a big-endian length. Only this exact header
/// is taken for the framing (as the Rust clients' decoder does); anything else is raw snappy.
pub(crate) const XERIAL_HEADER: &[u8] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// A snappy block cannot expand more than this (a 3-byte copy tag emits at most 64 bytes).
const SNAPPY_MAX_RATIO: usize = 22;

fn corrupt(e: impl std::fmt::Display) -> StorageError {
    StorageError::CorruptMessage(format!("cannot decompress batch: {e}"))
}

/// The decompressed records of a batch with compression `codec` (1 gzip, 2 snappy, 3 lz4,
/// 4 zstd) whose compressed records section is `input`.
pub(crate) fn records_reader<'a>(codec: i16, input: &'a [u8]) -> Result<Box<dyn BufRead + 'a>> {
    Ok(match codec {
        // Members after the first are read too, as Java's GZIPInputStream does; anything else
        // after the stream fails the read (a client's decoder could not read it).
        1 => Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(input))),
        2 => Box::new(Cursor::new(snappy(input)?)),
        3 => Box::new(BufReader::new(lz4::Decoder::new(input).map_err(corrupt)?)),
        4 => Box::new(BufReader::new(
            zstd::stream::read::Decoder::with_buffer(input).map_err(corrupt)?,
        )),
        other => return Err(corrupt(format!("unknown compression codec {other}"))),
    })
}

/// All of `input` decompressed with `codec` (0: none), refused as corrupt beyond `limit` bytes.
pub fn decompress_bounded(codec: i16, input: &[u8], limit: usize) -> Result<Vec<u8>> {
    if codec == 0 {
        if input.len() > limit {
            return Err(corrupt(format!("more than {limit} bytes")));
        }
        return Ok(input.to_vec());
    }
    let mut out = Vec::new();
    records_reader(codec, input)?
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if out.len() > limit {
        return Err(corrupt(format!("more than {limit} bytes")));
    }
    Ok(out)
}

fn snappy(input: &[u8]) -> Result<Vec<u8>> {
    let block = |compressed: &[u8], out: &mut Vec<u8>| -> Result<()> {
        let len = snap::raw::decompress_len(compressed).map_err(corrupt)?;
        if len > compressed.len().saturating_mul(SNAPPY_MAX_RATIO) + 64 {
            return Err(corrupt(format!(
                "a snappy block of {} bytes claims {len}",
                compressed.len()
            )));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut out[start..])
            .map_err(corrupt)?;
        Ok(())
    };
    let mut out = Vec::new();
    if !input.starts_with(XERIAL_HEADER) {
        block(input, &mut out)?;
        return Ok(out);
    }
    let mut rest = input
        .get(XERIAL_HEADER.len()..)
        .ok_or_else(|| corrupt("short snappy header"))?;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("short snappy block length"))?;
        let len = u32::from_be_bytes(*len) as usize;
        let compressed = tail
            .get(..len)
            .ok_or_else(|| corrupt("short snappy block"))?;
        block(compressed, &mut out)?;
        rest = &tail[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate(codec: i16, input: &[u8]) -> Result<Vec<u8>> {
        decompress_bounded(codec, input, 1 << 30)
    }

    #[test]
    fn a_payload_larger_than_the_limit_is_refused() {
        let zeros = vec![0u8; 1 << 20];
        let small = zstd::encode_all(&zeros[..], 3).unwrap();
        assert_eq!(decompress_bounded(4, &small, 1 << 20).unwrap(), zeros);
        assert!(decompress_bounded(4, &small, (1 << 20) - 1).is_err());
        assert!(decompress_bounded(0, &zeros, 10).is_err());
    }

    #[test]
    fn snappy_raw_and_xerial_framing_read_the_same() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(inflate(2, &raw).unwrap(), data);
        let mut xerial = XERIAL_HEADER.to_vec();
        for chunk in data.chunks(32 * 1024) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            xerial.extend_from_slice(&(block.len() as u32).to_be_bytes());
            xerial.extend_from_slice(&block);
        }
        assert_eq!(inflate(2, &xerial).unwrap(), data);
    }

    #[test]
    fn a_snappy_block_claiming_more_than_snappy_can_expand_is_corrupt() {
        // A varint length of 4 GiB followed by a few bytes: refused before any allocation.
        let claim = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x01, 0x02];
        assert!(matches!(
            inflate(2, &claim),
            Err(StorageError::CorruptMessage(_))
        ));
        let mut xerial = XERIAL_HEADER.to_vec();
        xerial.extend_from_slice(&[0, 0, 0, 8]);
        xerial.extend_from_slice(&claim);
        assert!(matches!(
            inflate(2, &xerial),
            Err(StorageError::CorruptMessage(_))
        ));
        assert!(matches!(
            inflate(7, b"x"),
            Err(StorageError::CorruptMessage(_))
        ));
    }
}
