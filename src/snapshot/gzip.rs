//! gzip inflate for the reader, on zlib-rs (its gzip wrapper checks each member's header,
//! CRC-32 and length), multi-member like `MultiGzDecoder`: after a member ends, any further
//! input must be another member. The reader's critical path is this thread (inflate runs
//! beside the parser), and zlib-rs with its runtime-detected SIMD CRC and copies inflates
//! V8's snapshots faster than flate2's miniz_oxide backend (docs/analysis-reader.md).
//! Compression (captures) stays on flate2.

use std::io::{self, ErrorKind, Read};

use zlib_rs::{Inflate, InflateFlush, Status};

/// Compressed bytes read from the source at a time.
const IN_CHUNK: usize = 256 * 1024;
/// `window_bits` for a gzip header and a 32 KiB window.
const GZIP_WINDOW: u8 = 16 + 15;

pub struct GzInflate<R> {
    src: R,
    inflate: Inflate,
    input: Vec<u8>,
    pos: usize,
    len: usize,
    /// The source has no more bytes.
    eof: bool,
    /// The current member ended (its trailer checked); more input starts another.
    member_done: bool,
}

impl<R: Read> GzInflate<R> {
    pub fn new(src: R) -> Self {
        Self {
            src,
            inflate: Inflate::new(true, GZIP_WINDOW),
            input: vec![0; IN_CHUNK],
            pos: 0,
            len: 0,
            eof: false,
            member_done: false,
        }
    }

    /// Refill the input buffer when it is used up; false at the source's end.
    fn refill(&mut self) -> io::Result<bool> {
        if self.pos < self.len {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        loop {
            match self.src.read(&mut self.input) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(k) => {
                    (self.pos, self.len) = (0, k);
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<R: Read> Read for GzInflate<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.member_done {
                if !self.refill()? {
                    return Ok(0);
                }
                // Another member follows.
                self.inflate = Inflate::new(true, GZIP_WINDOW);
                self.member_done = false;
            }
            let more = self.refill()?;
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress(&self.input[self.pos..self.len], out, InflateFlush::NoFlush)
                .map_err(|e| io::Error::new(ErrorKind::InvalidData, e.as_str()))?;
            let used = (self.inflate.total_in() - in0) as usize;
            let made = (self.inflate.total_out() - out0) as usize;
            self.pos += used;
            if status == Status::StreamEnd {
                self.member_done = true;
            } else if !more && made == 0 {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "the gzip stream ends early (truncated)",
                ));
            }
            if made > 0 {
                return Ok(made);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn gz(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Reads everything through `GzInflate`, `step` bytes of source at a time.
    fn inflate_all(src: &[u8], step: usize, out_chunk: usize) -> io::Result<Vec<u8>> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                let k = self.0.len().min(self.1).min(b.len());
                b[..k].copy_from_slice(&self.0[..k]);
                self.0 = &self.0[k..];
                Ok(k)
            }
        }
        let mut r = GzInflate::new(Trickle(src, step));
        let mut out = Vec::new();
        let mut buf = vec![0u8; out_chunk];
        loop {
            let k = r.read(&mut buf)?;
            if k == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..k]);
        }
    }

    fn data(n: usize) -> Vec<u8> {
        let mut x = 12345u32;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 3 == 0 {
                    b'0' + (x >> 28) as u8 % 10
                } else {
                    b",\n[]{}\"ab"[(x >> 24) as usize % 9]
                }
            })
            .collect()
    }

    #[test]
    fn members_of_any_size_and_level_inflate_to_their_bytes_in_any_chunking() {
        for (n, level) in [(0, 1), (1, 6), (1000, 1), (300_000, 1), (1_000_000, 9)] {
            let d = data(n);
            let g = gz(&d, level);
            for (step, out_chunk) in [(1, 7), (100, 4096), (IN_CHUNK, 1 << 20)] {
                assert_eq!(
                    inflate_all(&g, step, out_chunk).unwrap(),
                    d,
                    "{n} bytes, level {level}, step {step}"
                );
            }
        }
    }

    #[test]
    fn concatenated_members_read_as_one_stream() {
        let (a, b) = (data(70_000), data(5));
        let mut g = gz(&a, 1);
        g.extend(gz(b"", 1));
        g.extend(gz(&b, 6));
        let mut want = a.clone();
        want.extend(&b);
        assert_eq!(inflate_all(&g, 999, 8192).unwrap(), want);
    }

    #[test]
    fn truncation_corruption_and_trailing_garbage_are_errors() {
        let d = data(200_000);
        let g = gz(&d, 1);
        // Cut anywhere (inside the header, the data or the trailer): an error, never a
        // short stream taken for the whole.
        for cut in [1, 5, 10, 11, 100, g.len() / 2, g.len() - 8, g.len() - 1] {
            let e = inflate_all(&g[..cut], 4096, 65536).unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::UnexpectedEof | ErrorKind::InvalidData),
                "cut {cut}: {e}"
            );
        }
        // A flipped byte in the data or the CRC.
        for at in [g.len() / 3, g.len() - 6] {
            let mut bad = g.clone();
            bad[at] ^= 0x55;
            assert!(inflate_all(&bad, 4096, 65536).is_err(), "flip at {at}");
        }
        // Bytes after the member that are not another member.
        let mut trailing = g.clone();
        trailing.extend_from_slice(b"garbage");
        assert!(inflate_all(&trailing, 4096, 65536).is_err());
    }
}
