//! The byte helpers of kizashi's own binary encodings (an account's state, its board entry, an
//! outbox entry, a changelog checkpoint): a [`Writer`] appends bytes, varints, zig-zag integers,
//! `f64`s and length-prefixed strings to a buffer, and a [`Reader`] reads them back.
//!
//! A reader never trusts its input: every read past the end, and every length or count larger
//! than the bytes that remain, is an [`Error`], never a panic or an allocation the input's size
//! does not bound.
//!
//! A leaf: it imports nothing of the crate (each encoding builds its own items on these).

/// Why bytes could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("truncated")]
    Truncated,
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Appends values to `buf`.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// An unsigned varint: seven bits a byte, low bits first, the top bit set on all but the last.
    pub fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    /// A signed integer, zig-zagged (0, -1, 1, -2, ... as 0, 1, 2, 3, ...) then a varint.
    pub fn int(&mut self, v: i64) {
        self.var(((v << 1) ^ (v >> 63)) as u64);
    }
    /// The 8 bytes of an `f64`, little-endian.
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// 4 bytes, little-endian.
    pub fn fixed32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// 8 bytes, little-endian.
    pub fn fixed64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// A length (varint), then the string's bytes.
    pub fn str(&mut self, s: &str) {
        self.var(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }
    /// A byte, 0 for `None`; 1 then the integer for `Some`.
    pub fn opt_int(&mut self, v: Option<i64>) {
        match v {
            None => self.u8(0),
            Some(x) => {
                self.u8(1);
                self.int(x);
            }
        }
    }
}

/// Reads what a [`Writer`] wrote, from the start of `buf`.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }
    pub fn u8(&mut self) -> Result<u8, Error> {
        let b = *self.buf.get(self.pos).ok_or(Error::Truncated)?;
        self.pos += 1;
        Ok(b)
    }
    pub fn var(&mut self) -> Result<u64, Error> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Error::Invalid("varint"))
    }
    pub fn int(&mut self) -> Result<i64, Error> {
        let v = self.var()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    /// Bytes not read yet.
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// A byte length, at most the bytes that remain.
    fn len(&mut self) -> Result<usize, Error> {
        self.count(1)
    }
    /// A number of items each encoded in at least `min_bytes`: at most what the remaining bytes
    /// can hold, so whatever is allocated for them is bounded by the input's size.
    pub fn count(&mut self, min_bytes: usize) -> Result<usize, Error> {
        let n = usize::try_from(self.var()?).map_err(|_| Error::Truncated)?;
        if n.checked_mul(min_bytes).is_none_or(|b| b > self.remaining()) {
            return Err(Error::Truncated);
        }
        Ok(n)
    }
    pub fn f64(&mut self) -> Result<f64, Error> {
        let bytes = self.buf.get(self.pos..self.pos + 8).ok_or(Error::Truncated)?;
        self.pos += 8;
        Ok(f64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }
    /// 4 bytes, little-endian (`Writer::fixed32`).
    pub fn fixed32(&mut self) -> Result<u32, Error> {
        let bytes = self.buf.get(self.pos..self.pos + 4).ok_or(Error::Truncated)?;
        self.pos += 4;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
    }
    /// 8 bytes, little-endian (`Writer::fixed64`).
    pub fn fixed64(&mut self) -> Result<u64, Error> {
        Ok(self.f64()?.to_bits())
    }
    /// A length, then that many bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let n = self.len()?;
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }
    /// A length, then that many bytes of UTF-8.
    pub fn str(&mut self) -> Result<&'a str, Error> {
        let n = self.len()?;
        let s = std::str::from_utf8(&self.buf[self.pos..self.pos + n]).map_err(|_| Error::Invalid("string"))?;
        self.pos += n;
        Ok(s)
    }
    pub fn opt_int(&mut self) -> Result<Option<i64>, Error> {
        Ok(match self.u8()? {
            0 => None,
            _ => Some(self.int()?),
        })
    }
    /// Whether every byte was read.
    pub fn done(&self) -> bool {
        self.pos == self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_reads_past_the_end_are_errors() {
        let mut w = Writer::default();
        w.u8(7);
        w.var(300);
        w.int(-2);
        w.f64(-0.5);
        w.fixed32(0xdead_beef);
        w.fixed64(u64::MAX - 1);
        w.str("né");
        w.opt_int(None);
        w.opt_int(Some(i64::MIN));
        assert_eq!(&w.buf[..4], [7, 0xac, 0x02, 3], "300 as a varint; -2 zig-zagged");
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.var(), Ok(300));
        assert_eq!(r.int(), Ok(-2));
        assert_eq!(r.f64(), Ok(-0.5));
        assert_eq!(r.fixed32(), Ok(0xdead_beef));
        assert_eq!(r.fixed64(), Ok(u64::MAX - 1));
        assert_eq!(r.str(), Ok("né"));
        assert_eq!(r.opt_int(), Ok(None));
        assert_eq!(r.opt_int(), Ok(Some(i64::MIN)));
        assert!(r.done());
        assert_eq!(r.u8(), Err(Error::Truncated));
        assert_eq!(Reader::new(&[0xff; 11]).var(), Err(Error::Invalid("varint")));
        assert_eq!(Reader::new(&[3, b'a', b'b']).str(), Err(Error::Truncated), "a length past the end");
        assert_eq!(Reader::new(&[2, 0xc3, 0x28]).str(), Err(Error::Invalid("string")));
        assert_eq!(Reader::new(&[2, 0]).count(1), Err(Error::Truncated), "two items of a byte in one byte");
    }
}
