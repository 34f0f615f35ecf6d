//! The 4-byte size prefix in front of every request and response.

use bytes::{Buf, Bytes, BytesMut};

/// Why a size prefix is refused; the connection is then closed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("frame size {0} is negative or zero")]
    NonPositive(i32),
    #[error("frame size {size} exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i32, max: usize },
}

/// How much buffer a claimed-but-unread frame may reserve ahead of its bytes: enough for large
/// reads, while a frame's buffer otherwise grows only as its bytes arrive, so a size prefix alone
/// cannot make the broker allocate `socket.request.max.bytes`.
const MAX_RESERVE_AHEAD: usize = 256 << 10;

/// The whole size (prefix included) of the frame that `buf` begins, once its prefix is there
/// and valid.
pub fn announced_size(buf: &BytesMut) -> Option<usize> {
    let prefix: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let size = i32::from_be_bytes(prefix);
    (size > 0).then(|| 4 + size as usize)
}

/// Splits a complete frame off the front of `buf`, leaving a partial frame in place.
/// A refused size prefix is an error: the caller closes the connection.
pub fn next_frame(buf: &mut BytesMut, max_size: usize) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size <= 0 {
        return Err(FrameError::NonPositive(size));
    }
    if size as usize > max_size {
        return Err(FrameError::TooLarge {
            size,
            max: max_size,
        });
    }
    let total = 4 + size as usize;
    if buf.len() < total {
        buf.reserve((total - buf.len()).min(MAX_RESERVE_AHEAD));
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size as usize).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_frames_and_refuses_bad_sizes() {
        let mut buf = BytesMut::from(&[0, 0, 0, 2, 7, 8, 0, 0][..]);
        assert_eq!(next_frame(&mut buf, 100).unwrap().unwrap(), &[7, 8][..]);
        assert_eq!(next_frame(&mut buf, 100).unwrap(), None);
        let mut neg = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert_eq!(next_frame(&mut neg, 100), Err(FrameError::NonPositive(-2)));
        let mut big = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            next_frame(&mut big, 100),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
