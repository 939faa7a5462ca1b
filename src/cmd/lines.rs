//! Lines of a file, read in large chunks and handed out as slices of the reader's own buffer:
//! no allocation and no copy per line, the newline found with `memchr`'s vectorised search.
//! Replay reads its inputs this way; what a line is stays exactly what
//! `BufRead::read_until(b'\n')` with the trailing `\n`/`\r` bytes trimmed made of it (tested).

use std::io::Read;
use std::ops::Range;

/// Reads `R` a chunk at a time; [`Lines::next_line`] returns where the next line is in
/// [`Lines::buf`], valid until the next call.
pub struct Lines<R> {
    inner: R,
    buf: Vec<u8>,
    /// The buffer's size when no line needs more; it goes back to it after a longer line.
    chunk: usize,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    /// Lines longer than this are handed out cut to their first `max_line` bytes, and
    /// [`Lines::cut`] gives their whole length: the buffer never holds more of one line than
    /// this (and a chunk), whatever the input (a file of zeros, a binary file).
    max_line: usize,
    /// Passing over the rest of a line longer than `max_line`, its first bytes kept at
    /// `buf[..max_line]`: the line's bytes so far.
    skipping: Option<u64>,
    /// The whole length of the line last handed out, if it was cut.
    cut: Option<u64>,
}

impl<R: Read> Lines<R> {
    /// A reader whose buffer starts at `chunk` bytes (at least 1) and grows for a longer line,
    /// up to `max_line` (at least 1) bytes of one.
    pub fn new(inner: R, chunk: usize, max_line: usize) -> Self {
        let chunk = chunk.max(1);
        Self { inner, buf: vec![0; chunk], chunk, start: 0, end: 0, eof: false, max_line: max_line.max(1), skipping: None, cut: None }
    }

    /// The whole length of the line the last [`Lines::next_line`] returned, if it was longer
    /// than `max_line` (it was then cut to its first `max_line` bytes); `None` otherwise.
    pub fn cut(&self) -> Option<u64> {
        self.cut
    }

    /// `line`, or its first `max_line` bytes (noted in `cut`) if it is longer.
    fn hand_out(&mut self, line: Range<usize>) -> Option<Range<usize>> {
        if line.len() > self.max_line {
            self.cut = Some(line.len() as u64);
            return Some(line.start..line.start + self.max_line);
        }
        Some(line)
    }

    /// The bytes a range from [`Lines::next_line`] refers to.
    pub fn buf(&self) -> &[u8] {
        &self.buf
    }

    /// The next line, without its trailing `\n` and `\r` bytes; `None` at the end. A last line
    /// without a newline is a line; an empty line is a line (of no bytes).
    pub fn next_line(&mut self) -> std::io::Result<Option<Range<usize>>> {
        self.cut = None;
        // Where in `buf[start..end]` the search for a newline resumes after a read.
        let mut searched = self.start;
        loop {
            if let Some(so_far) = self.skipping {
                // `buf[max_line..end]` was just read: the line goes on to a newline, or the end.
                let fresh = &self.buf[self.max_line..self.end];
                let (len, next) = match memchr::memchr(b'\n', fresh) {
                    Some(i) => (i, self.max_line + i + 1),
                    None if self.eof => (fresh.len(), self.end),
                    None => {
                        self.skipping = Some(so_far + fresh.len() as u64);
                        self.end = self.max_line;
                        self.fill()?;
                        continue;
                    }
                };
                self.skipping = None;
                self.cut = Some(so_far + len as u64);
                self.start = next;
                return Ok(Some(0..self.max_line));
            }
            if let Some(i) = memchr::memchr(b'\n', &self.buf[searched..self.end]) {
                let nl = searched + i;
                let line = self.start..self.trimmed(nl);
                self.start = nl + 1;
                return Ok(self.hand_out(line));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let line = self.start..self.trimmed(self.end);
                self.start = self.end;
                return Ok(self.hand_out(line));
            }
            // No newline in what is buffered: keep the partial line at the front, make room, read.
            let partial = self.end - self.start;
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = partial;
            searched = partial;
            if partial > self.max_line {
                // Too long to hold: keep its first `max_line` bytes, pass over the rest.
                self.skipping = Some(partial as u64);
                self.end = self.max_line;
                if self.buf.len() < self.max_line.saturating_add(self.chunk) {
                    self.buf.resize(self.max_line.saturating_add(self.chunk), 0);
                }
            } else if self.buf.len() > self.chunk && partial < self.chunk / 2 {
                // A long line is behind: give its room back.
                self.buf.truncate(self.chunk);
                self.buf.shrink_to_fit();
            } else if self.end == self.buf.len() {
                let grown = (self.buf.len() * 2).min(self.max_line.saturating_add(self.chunk));
                self.buf.resize(grown, 0);
            }
            self.fill()?;
        }
    }

    /// Reads into `buf[end..]` (not empty), once.
    fn fill(&mut self) -> std::io::Result<()> {
        let n = loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        if n == 0 {
            self.eof = true;
        }
        self.end += n;
        Ok(())
    }

    /// The end of the line ending before `at` once its trailing `\r` bytes are dropped (a
    /// line's `\n` is never inside it).
    fn trimmed(&self, mut at: usize) -> usize {
        while at > self.start && self.buf[at - 1] == b'\r' {
            at -= 1;
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::BufRead;

    /// What replay made of a file before: `read_until(b'\n')`, trailing `\n`/`\r` trimmed.
    fn read_until_lines(data: &[u8]) -> Vec<Vec<u8>> {
        let mut r = std::io::BufReader::with_capacity(7, data);
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line).unwrap() == 0 {
                return out;
            }
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            out.push(line);
        }
    }

    fn chunked_lines(data: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let mut l = Lines::new(data, chunk, usize::MAX);
        let mut out = Vec::new();
        while let Some(r) = l.next_line().unwrap() {
            out.push(l.buf()[r].to_vec());
        }
        out
    }

    /// A reader that hands out at most `n` bytes a call, as a pipe or a slow disk may.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(out.len()).min(self.1);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn lines_cut_as_read_until_does() {
        let data = b"{\"a\":1}\r\n\n\nlast\r\r\nx\r";
        assert_eq!(chunked_lines(data, 4), vec![b"{\"a\":1}".to_vec(), vec![], vec![], b"last".to_vec(), b"x".to_vec()]);
        assert_eq!(chunked_lines(data, 4), read_until_lines(data));
        assert!(chunked_lines(b"", 8).is_empty());
        assert_eq!(chunked_lines(b"\n", 8), vec![Vec::<u8>::new()]);
    }

    #[test]
    fn a_line_longer_than_the_buffer_grows_it() {
        let long = vec![b'x'; 10_000];
        let mut data = long.clone();
        data.extend_from_slice(b"\nshort\n");
        data.extend_from_slice(&long);
        let want = vec![long.clone(), b"short".to_vec(), long];
        assert_eq!(chunked_lines(&data, 16), want);
        let mut l = Lines::new(Trickle(&data, 3), 16, usize::MAX);
        let mut got = Vec::new();
        while let Some(r) = l.next_line().unwrap() {
            got.push(l.buf()[r].to_vec());
        }
        assert_eq!(got, want);
    }

    #[test]
    fn the_buffer_shrinks_back_after_a_long_line() {
        let mut data = vec![b'x'; 10_000];
        data.extend_from_slice(&b"ab\n".repeat(20)[..]);
        data.insert(10_000, b'\n');
        let mut l = Lines::new(Trickle(&data, 3), 16, usize::MAX);
        assert_eq!(l.next_line().unwrap().map(|r| r.len()), Some(10_000));
        assert!(l.buf().len() >= 10_000);
        let r = l.next_line().unwrap().expect("a short line");
        assert_eq!(&l.buf()[r], b"ab");
        assert_eq!(l.buf().len(), 16);
        let mut n = 1;
        while let Some(r) = l.next_line().unwrap() {
            assert_eq!(&l.buf()[r], b"ab");
            n += 1;
        }
        assert_eq!(n, 20);
    }

    proptest! {
        #[test]
        fn any_bytes_split_as_read_until_does(
            data in prop::collection::vec(prop::sample::select(vec![b'a', b'{', b'\n', b'\r', 0xff]), 0..400),
            chunk in 1usize..64,
            trickle in 1usize..40,
        ) {
            let want = read_until_lines(&data);
            prop_assert_eq!(&chunked_lines(&data, chunk), &want);
            let mut l = Lines::new(Trickle(&data, trickle), chunk, usize::MAX);
            let mut got = Vec::new();
            while let Some(r) = l.next_line().unwrap() {
                got.push(l.buf()[r].to_vec());
            }
            prop_assert_eq!(got, want);
        }

        /// Past `max_line`, a line is handed out as its first `max_line` bytes with its whole
        /// length, and the lines after it are cut exactly as before; the buffer never grows
        /// past `max_line` and a chunk.
        #[test]
        fn lines_past_the_limit_are_cut_and_the_rest_read_as_before(
            lens in prop::collection::vec(0usize..120, 0..20),
            max_line in 1usize..50,
            chunk in 1usize..64,
            trickle in 1usize..40,
            last_newline in any::<bool>(),
        ) {
            let mut data = Vec::new();
            for (i, n) in lens.iter().enumerate() {
                data.extend((0..*n).map(|j| b'a' + ((i + j) % 26) as u8));
                data.push(b'\n');
            }
            if !last_newline && data.pop().is_some() && lens.last() == Some(&0) {
                // The last line was empty and, without its newline, is no line at all.
                data.pop();
            }
            let want: Vec<(Vec<u8>, Option<u64>)> = read_until_lines(&data)
                .into_iter()
                .map(|l| if l.len() > max_line { (l[..max_line].to_vec(), Some(l.len() as u64)) } else { (l, None) })
                .collect();
            let mut l = Lines::new(Trickle(&data, trickle), chunk, max_line);
            let mut got = Vec::new();
            while let Some(r) = l.next_line().unwrap() {
                got.push((l.buf()[r].to_vec(), l.cut()));
                prop_assert!(l.buf().len() <= (max_line + chunk).max(chunk), "{} bytes held", l.buf().len());
            }
            prop_assert_eq!(got, want);
        }
    }

    /// A file of one endless line (zeros, a binary file) is read with a bounded buffer.
    #[test]
    fn an_endless_line_is_read_in_bounded_memory() {
        let endless = std::io::repeat(0).take(64 << 20);
        let mut l = Lines::new(endless.chain(&b"\nnext\n"[..]), 1 << 16, 1 << 20);
        let r = l.next_line().unwrap().unwrap();
        assert_eq!(r.len(), 1 << 20);
        assert_eq!(l.cut(), Some(64 << 20));
        assert!(l.buf().len() <= (1 << 20) + (1 << 16));
        let r = l.next_line().unwrap().unwrap();
        assert_eq!(&l.buf()[r], b"next");
        assert_eq!(l.cut(), None);
        assert!(l.next_line().unwrap().is_none());
    }
}
