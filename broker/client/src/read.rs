//! Reading a frame's body off a stream into new memory. Shared by the client's connection and the
//! broker's request reader: a body is up to `replica.fetch.response.max.bytes` or
//! `socket.request.max.bytes`, and zeroing a buffer of that size before the socket overwrites it
//! showed up in replication profiles.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Reads exactly `len` bytes. Fails with `UnexpectedEof` when the stream ends first. The caller
/// has checked `len` against its cap; the memory is reserved up front but only touched as bytes
/// arrive.
pub async fn read_body<R: AsyncRead + Unpin>(reader: &mut R, len: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(len);
    while buf.len() < len {
        let missing = len - buf.len();
        let mut rest = (&mut buf).limit(missing);
        if reader.read_buf(&mut rest).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_exactly_the_length_across_short_reads() {
        let (mut a, mut b) = tokio::io::duplex(7);
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            a.write_all(&sent).await.unwrap();
            a.write_all(b"next").await.unwrap();
        });
        let body = read_body(&mut b, 5000).await.unwrap();
        assert_eq!(&body[..], &data[..]);
        // What follows the body stays in the stream.
        assert_eq!(&read_body(&mut b, 4).await.unwrap()[..], b"next");
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn a_stream_ending_early_is_an_error() {
        let (mut a, mut b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"abc")
            .await
            .unwrap();
        drop(a);
        let err = read_body(&mut b, 10).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
