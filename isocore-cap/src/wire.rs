//! The strict byte reader and writer every encoding in this crate shares.
//!
//! Integers are unsigned LEB128 in their shortest form; fixed-width fields are raw bytes. A
//! reader never allocates: it hands out borrowed slices after checking that enough input
//! remains, so a length field can never make it reserve memory it was not given.

use crate::error::DecodeError;

/// Longest LEB128 encoding of a `u64`.
const MAX_VARINT_LEN: usize = 10;

/// A cursor over borrowed input that refuses every non-canonical spelling.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or(DecodeError::Truncated)?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// A shortest-form LEB128 `u64`: no trailing zero groups, no bits beyond 64.
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..MAX_VARINT_LEN {
            let byte = self.u8()?;
            let bits = u64::from(byte & 0x7f);
            if i == MAX_VARINT_LEN - 1 && byte > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(DecodeError::NonCanonicalVarint);
                }
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.bytes.len() { Ok(()) } else { Err(DecodeError::TrailingBytes) }
    }
}

/// Appends the shortest LEB128 encoding of `value`.
pub(crate) fn put_varint(out: &mut alloc::vec::Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn varints_round_trip_and_refuse_second_spellings() {
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut r = Reader::new(&out);
            assert_eq!(r.varint(), Ok(v));
            assert_eq!(r.finish(), Ok(()));
        }
        assert_eq!(Reader::new(&[0x80, 0x00]).varint(), Err(DecodeError::NonCanonicalVarint));
        assert_eq!(Reader::new(&[0x81, 0x80, 0x00]).varint(), Err(DecodeError::NonCanonicalVarint));
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(Reader::new(&too_big).varint(), Err(DecodeError::VarintOverflow));
        assert_eq!(Reader::new(&[0xff; 11]).varint(), Err(DecodeError::VarintOverflow));
        assert_eq!(Reader::new(&[0xff, 0xff]).varint(), Err(DecodeError::Truncated));
    }
}
