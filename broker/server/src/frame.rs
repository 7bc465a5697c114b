//! Kafka's framing: every request and response is an `i32` big-endian length followed by that many
//! bytes. Reading enforces `socket.request.max.bytes` before allocating, so a hostile length can
//! neither exhaust memory nor stall the reader.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {size} is negative or exceeds socket.request.max.bytes {max}")]
    BadSize { size: i64, max: u32 },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame. `Ok(None)` is a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u32,
) -> Result<Option<Bytes>, FrameError> {
    let mut len = [0u8; 4];
    let mut filled = 0;
    while filled < 4 {
        let n = reader.read(&mut len[filled..]).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        filled += n;
    }
    let size = i32::from_be_bytes(len);
    if size < 0 || size as u32 > max {
        return Err(FrameError::BadSize {
            size: size.into(),
            max,
        });
    }
    match strait_client::read::read_body(reader, size as usize).await {
        Ok(body) => Ok(Some(body)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
        Err(e) => Err(e.into()),
    }
}

/// Starts a frame in `buf`: reserves the length prefix, to be filled by [`finish_frame`].
pub fn start_frame(buf: &mut BytesMut) -> usize {
    let at = buf.len();
    buf.put_i32(0);
    at
}

/// Writes the length of the frame started at `at`.
pub fn finish_frame(buf: &mut BytesMut, at: usize) {
    let len = (buf.len() - at - 4) as i32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &[u8],
) -> std::io::Result<()> {
    writer.write_all(frame).await?;
    // A no-op on TCP; TLS holds encrypted records back until flushed.
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_frames_and_rejects_bad_sizes() {
        let mut data: &[u8] = &[0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0];
        let f = read_frame(&mut data, 100).await.unwrap().unwrap();
        assert_eq!(&f[..], b"abc");
        assert!(matches!(
            read_frame(&mut data, 100).await,
            Err(FrameError::Truncated)
        ));

        let mut neg: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut neg, 100).await,
            Err(FrameError::BadSize { .. })
        ));
        let mut big: &[u8] = &[0, 0, 1, 0];
        assert!(matches!(
            read_frame(&mut big, 100).await,
            Err(FrameError::BadSize { size: 256, .. })
        ));
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty, 100).await.unwrap().is_none());
        let mut short_body: &[u8] = &[0, 0, 0, 9, 1, 2];
        assert!(matches!(
            read_frame(&mut short_body, 100).await,
            Err(FrameError::Truncated)
        ));
    }
}
