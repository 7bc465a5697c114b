//! The primitive encodings of Kafka's coordinator records (`__consumer_offsets`,
//! `__transaction_state`): int16-length strings and int32-length bytes of non-flexible versions,
//! and the unsigned varints, compact strings and arrays and tagged-field sections of flexible
//! ones. One bounds-checked [`Reader`] whose every getter fails instead of panicking on short or
//! corrupt input, and the matching writers, shared by the group and transaction schemas.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The longest prefix of `s` of at most `i16::MAX` bytes that ends on a char boundary, so a cut
/// string stays UTF-8 (Kafka strings are limited to that length).
fn bounded(s: &str) -> &str {
    let mut end = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A non-nullable int16-length string.
pub fn put_str(buf: &mut BytesMut, s: &str) {
    let s = bounded(s);
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

/// A nullable int16-length string (-1: null).
pub fn put_nullable_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(buf, s),
        None => buf.put_i16(-1),
    }
}

/// Int32-length bytes.
pub fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(i32::try_from(b.len()).unwrap_or(i32::MAX));
    buf.put_slice(&b[..b.len().min(i32::MAX as usize)]);
}

pub fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// A compact length or count: `n + 1` (0 means null).
pub fn put_compact_len(buf: &mut BytesMut, n: usize) {
    put_uvarint(
        buf,
        u32::try_from(n).map_or(u32::MAX, |n| n.saturating_add(1)),
    );
}

/// A compact (flexible-version) string.
pub fn put_compact_str(buf: &mut BytesMut, s: &str) {
    let s = bounded(s);
    put_compact_len(buf, s.len());
    buf.put_slice(s.as_bytes());
}

/// A nullable compact string.
pub fn put_compact_nullable_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_compact_str(buf, s),
        None => put_uvarint(buf, 0),
    }
}

/// A bounds-checked reader: every getter fails instead of panicking on short input.
pub struct Reader(pub Bytes);

impl Reader {
    pub fn i8(&mut self) -> Option<i8> {
        (self.0.remaining() >= 1).then(|| self.0.get_i8())
    }
    pub fn i16(&mut self) -> Option<i16> {
        (self.0.remaining() >= 2).then(|| self.0.get_i16())
    }
    pub fn i32(&mut self) -> Option<i32> {
        (self.0.remaining() >= 4).then(|| self.0.get_i32())
    }
    pub fn i64(&mut self) -> Option<i64> {
        (self.0.remaining() >= 8).then(|| self.0.get_i64())
    }
    pub fn take(&mut self, n: usize) -> Option<Bytes> {
        (self.0.remaining() >= n).then(|| self.0.split_to(n))
    }
    pub fn remaining(&self) -> usize {
        self.0.remaining()
    }
    /// An unsigned varint of at most 5 bytes that fits in a u32.
    pub fn uvarint(&mut self) -> Option<u32> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.i8()? as u8;
            if i == 4 && b > 0x0f {
                return None;
            }
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    pub fn utf8(&mut self, n: usize) -> Option<String> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).ok()
    }
    /// A nullable int16-length string: `Some(None)` for null.
    pub fn nullable_str(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return (len == -1).then_some(None);
        }
        self.utf8(len as usize).map(Some)
    }
    /// A non-nullable int16-length string.
    pub fn str(&mut self) -> Option<String> {
        self.nullable_str()?
    }
    /// Int32-length bytes (null reads as empty).
    pub fn bytes(&mut self) -> Option<Bytes> {
        let len = self.i32()?;
        if len < 0 {
            return Some(Bytes::new());
        }
        self.take(len as usize)
    }
    /// A nullable compact string: `Some(None)` for null.
    pub fn compact_nullable_str(&mut self) -> Option<Option<String>> {
        match self.uvarint()? {
            0 => Some(None),
            n => self.utf8(n as usize - 1).map(Some),
        }
    }
    /// A non-nullable compact string.
    pub fn compact_str(&mut self) -> Option<String> {
        self.compact_nullable_str()?
    }
    /// A nullable int32-length array's count: `Some(None)` for null. The count is checked
    /// against the bytes left (each element takes at least `min_elem` bytes) so a corrupt
    /// length can never make us allocate or loop for long.
    pub fn array_len(&mut self, min_elem: usize) -> Option<Option<usize>> {
        let n = self.i32()?;
        if n < 0 {
            return (n == -1).then_some(None);
        }
        let n = n as usize;
        (n.checked_mul(min_elem)? <= self.remaining()).then_some(Some(n))
    }
    /// A nullable compact array's count: `Some(None)` for null; bounded like `array_len`.
    pub fn compact_array_len(&mut self, min_elem: usize) -> Option<Option<usize>> {
        let n = self.uvarint()?;
        if n == 0 {
            return Some(None);
        }
        let n = n as usize - 1;
        (n.checked_mul(min_elem)? <= self.remaining()).then_some(Some(n))
    }
    /// Reads a tagged-field section, handing each field to `on_tag` (which skips the ones it
    /// does not know by returning `Some(())`).
    pub fn tagged_fields(
        &mut self,
        mut on_tag: impl FnMut(u32, Bytes) -> Option<()>,
    ) -> Option<()> {
        let count = self.uvarint()?;
        let mut last: Option<u32> = None;
        for _ in 0..count {
            let tag = self.uvarint()?;
            // Tags are strictly ascending in Kafka's encoding; anything else is corrupt.
            if last.is_some_and(|l| tag <= l) {
                return None;
            }
            last = Some(tag);
            let size = self.uvarint()? as usize;
            let data = self.take(size)?;
            on_tag(tag, data)?;
        }
        Some(())
    }
    /// Skips a tagged-field section (fields this version does not know).
    pub fn skip_tags(&mut self) -> Option<()> {
        self.tagged_fields(|_, _| Some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_cut_on_a_char_boundary() {
        let long = "é".repeat(20_000);
        let mut buf = BytesMut::new();
        put_str(&mut buf, &long);
        let mut r = Reader(buf.freeze());
        let s = r.str().expect("valid UTF-8");
        assert!(s.len() <= i16::MAX as usize && s.chars().all(|c| c == 'é'));
        let mut buf = BytesMut::new();
        put_compact_str(&mut buf, &long);
        assert!(Reader(buf.freeze()).compact_str().is_some());
    }

    #[test]
    fn varints_and_nulls_round_trip() {
        let mut buf = BytesMut::new();
        for v in [0, 1, 127, 128, 300, u32::MAX] {
            put_uvarint(&mut buf, v);
        }
        put_compact_nullable_str(&mut buf, None);
        put_nullable_str(&mut buf, None);
        let mut r = Reader(buf.freeze());
        for v in [0, 1, 127, 128, 300, u32::MAX] {
            assert_eq!(r.uvarint(), Some(v));
        }
        assert_eq!(r.compact_nullable_str(), Some(None));
        assert_eq!(r.nullable_str(), Some(None));
        assert_eq!(r.i8(), None);
    }
}
