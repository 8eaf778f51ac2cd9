//! Streaming `.heapsnapshot` / `.heapsnapshot.gz` reader: a file in, a compact
//! [`HeapSnapshot`] out, the file never held whole nor unpacked to disk.
//!
//! Threads: the caller's thread (an analysis thread, never the JS thread) reads the file
//! and, when it starts with gzip's magic `1f 8b` (recognised by content, not by name),
//! inflates it into 1 MiB buffers; a scoped `leakguard-snapshot-parse` thread tokenizes
//! them ([`super::parse`]) straight into the arrays. The two are joined by a bounded
//! crossbeam channel of reused buffers, so at most [`BUFFERS`] MiB of the stream is held
//! at any time.
//!
//! Memory: the arrays only, preallocated from the header's counts but never beyond what
//! the input's size can justify (a header claiming billions of nodes in a small file
//! allocates for what the file can hold, then fails on the count): 26 bytes per node
//! (27 with detachedness), 9 per edge, the strings' bytes plus 8 per string, 16 per
//! location.
//!
//! Errors: anything malformed is `ANALYSIS_INVALID_SNAPSHOT` naming the byte offset in
//! the uncompressed stream and the section; an unreadable file `ANALYSIS_READ_FAILED`;
//! a cancelled [`Control`] `ANALYSIS_ABORTED` within one buffer.

use std::cell::Cell;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use crossbeam_channel::bounded;
use super::gzip::GzInflate;

use super::control::Control;
use super::parse::{invalid, Header, NodeRec, Parser, Sink};
use super::{HeapSnapshot, Location, StringTable};
use crate::error::{Code, Error, Result};

/// Size of one buffer of uncompressed JSON handed to the tokenizer.
pub const CHUNK: usize = 1 << 20;
/// Buffers in circulation between the two threads.
pub const BUFFERS: usize = 4;
/// The most a gzip file is assumed to expand when sizing the arrays up front (level 1
/// gives ~6.5x on snapshots, level 9 ~8x). Past it the arrays grow as they fill.
const GZIP_RATIO: u64 = 32;
/// Preallocation when the input's size is unknown.
const UNKNOWN_SIZE_NODES: u64 = 1 << 20;

/// Read a snapshot file (plain or gzip).
pub fn read_path(path: &Path, ctl: &Control) -> Result<HeapSnapshot> {
    let f = File::open(path).map_err(|e| {
        Error::io(
            Code::AnalysisReadFailed,
            format!("opening heap snapshot {}", path.display()),
            &e,
        )
    })?;
    let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
    read(f, len, ctl)
}

/// Read a snapshot from `r` (plain or gzip); `total_bytes` is `r`'s length if known, for
/// progress and for bounding preallocation.
pub fn read(r: impl Read, total_bytes: Option<u64>, ctl: &Control) -> Result<HeapSnapshot> {
    let b = drive(r, total_bytes, ctl, |gz| {
        Build::new(total_bytes.map(|t| if gz { t.saturating_mul(GZIP_RATIO) } else { t }))
    })?;
    Ok(b.finish())
}

/// Counts the raw (possibly compressed) bytes read, for progress.
struct Counting<'a, R> {
    inner: R,
    n: &'a Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}

/// Fill `buf` from `src` until full or at the end; returns the length.
fn fill(src: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut len = 0;
    while len < buf.len() {
        match src.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(k) => len += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// Run the two-thread pipeline with the sink `make(is_gzip)` builds; the sink comes back
/// once the whole stream has been checked.
pub(crate) fn drive<S: Sink + Send>(
    r: impl Read,
    total_bytes: Option<u64>,
    ctl: &Control,
    make: impl FnOnce(bool) -> S,
) -> Result<S> {
    let raw = Cell::new(0u64);
    let mut counted = Counting { inner: r, n: &raw };
    let mut magic = [0u8; 2];
    let got = fill(&mut counted, &mut magic)
        .map_err(|e| Error::io(Code::AnalysisReadFailed, "reading the heap snapshot", &e))?;
    let head = &magic[..got];
    let gz = head == [0x1f, 0x8b];
    let chained = head.chain(counted);
    let mut plain;
    let mut inflate;
    let src: &mut dyn Read = if gz {
        inflate = GzInflate::new(chained);
        &mut inflate
    } else {
        plain = chained;
        &mut plain
    };
    let sink = make(gz);

    let (full_tx, full_rx) = bounded::<(Vec<u8>, usize)>(BUFFERS);
    let (free_tx, free_rx) = bounded::<Vec<u8>>(BUFFERS);
    std::thread::scope(|scope| {
        let parser = std::thread::Builder::new()
            .name("leakguard-snapshot-parse".into())
            .spawn_scoped(scope, move || -> Result<S> {
                let mut p = Parser::new(sink);
                for (buf, len) in full_rx.iter() {
                    ctl.check()?;
                    p.feed(&buf[..len])?;
                    // The pump may have stopped; then the buffer is simply dropped.
                    let _ = free_tx.try_send(buf);
                }
                p.finish()
            })
            .map_err(|e| {
                Error::io(
                    Code::AnalysisReadFailed,
                    "starting the snapshot parse thread",
                    &e,
                )
            })?;

        let mut stop: Option<Error> = None;
        let mut allocated = 0;
        let mut out: u64 = 0;
        let mut rep = ctl.reporter("read", total_bytes.unwrap_or(0));
        loop {
            if let Err(e) = ctl.check() {
                stop = Some(e);
                break;
            }
            let mut buf = match free_rx.try_recv() {
                Ok(b) => b,
                Err(_) if allocated < BUFFERS => {
                    allocated += 1;
                    vec![0u8; CHUNK]
                }
                Err(_) => match free_rx.recv() {
                    Ok(b) => b,
                    // The tokenizer has stopped (its error is the answer).
                    Err(_) => break,
                },
            };
            let len = match fill(src, &mut buf) {
                Ok(len) => len,
                Err(e) => {
                    stop = Some(if gz {
                        invalid(
                            "gzip stream",
                            out,
                            format!(
                                "corrupt or truncated gzip data after {} compressed bytes ({e})",
                                raw.get()
                            ),
                        )
                    } else {
                        Error::io(Code::AnalysisReadFailed, "reading the heap snapshot", &e)
                    });
                    break;
                }
            };
            if len == 0 {
                break;
            }
            out += len as u64;
            if total_bytes.is_some() {
                rep.tick(raw.get());
            }
            if full_tx.send((buf, len)).is_err() {
                break;
            }
        }
        drop(full_tx);
        let parsed = match parser.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        if let Some(e) = stop {
            return Err(e);
        }
        let sink = parsed?;
        if total_bytes.is_some() {
            rep.done();
        }
        Ok(sink)
    })
}

/// The reader's sink: records straight into the arrays.
pub(crate) struct Build {
    snap: HeapSnapshot,
    /// Uncompressed bytes the input can justify, if its size is known.
    budget: Option<u64>,
}

impl Build {
    pub(crate) fn new(budget: Option<u64>) -> Self {
        Self {
            snap: HeapSnapshot {
                first_edge: vec![0],
                strings: StringTable::new(),
                ..Default::default()
            },
            budget,
        }
    }

    /// Records worth preallocating: the header's count, capped by what the input's size
    /// can hold (each value takes at least a digit and a comma).
    fn cap(&self, count: u64, fields: usize) -> usize {
        let justified = match self.budget {
            Some(b) => b / (2 * fields.max(1) as u64),
            None => UNKNOWN_SIZE_NODES,
        };
        count.min(justified) as usize
    }

    pub(crate) fn finish(mut self) -> HeapSnapshot {
        let s = &mut self.snap;
        s.node_type.shrink_to_fit();
        s.node_name.shrink_to_fit();
        s.node_id.shrink_to_fit();
        s.self_size.shrink_to_fit();
        if let Some(d) = &mut s.detachedness {
            d.shrink_to_fit();
        }
        s.first_edge.shrink_to_fit();
        s.edge_type.shrink_to_fit();
        s.edge_name.shrink_to_fit();
        s.edge_to.shrink_to_fit();
        s.strings.shrink_to_fit();
        s.locations.shrink_to_fit();
        self.snap
    }
}

impl Sink for Build {
    const EDGES: bool = true;
    const LOCATIONS: bool = true;

    fn header(&mut self, h: &Header) -> Result<()> {
        let n = self.cap(h.node_count, h.node_field_count);
        let e = self.cap(h.edge_count, h.edge_field_count);
        let s = &mut self.snap;
        s.node_types = h.node_types.clone();
        s.edge_types = h.edge_types.clone();
        s.node_type.reserve_exact(n);
        s.node_name.reserve_exact(n);
        s.node_id.reserve_exact(n);
        s.self_size.reserve_exact(n);
        s.first_edge.reserve_exact(n);
        if h.has_detachedness {
            s.detachedness = Some(Vec::with_capacity(n));
        }
        s.edge_type.reserve_exact(e);
        s.edge_name.reserve_exact(e);
        s.edge_to.reserve_exact(e);
        Ok(())
    }

    #[inline]
    fn node(&mut self, n: &NodeRec) {
        let s = &mut self.snap;
        s.node_type.push(n.ty);
        s.node_name.push(n.name);
        s.node_id.push(n.id);
        s.self_size.push(n.self_size);
        if let Some(d) = &mut s.detachedness {
            d.push(n.detachedness);
        }
        // The parser has checked the sum stays within the header's 32-bit edge_count.
        let last = *s.first_edge.last().unwrap_or(&0);
        s.first_edge.push(last + n.edge_count);
    }

    #[inline]
    fn edge(&mut self, ty: u8, name: u32, to: u32) {
        let s = &mut self.snap;
        s.edge_type.push(ty);
        s.edge_name.push(name);
        s.edge_to.push(to);
    }

    fn location(&mut self, loc: Location) {
        self.snap.locations.push(loc);
    }

    fn wants_string(&mut self, _i: u32) -> bool {
        true
    }

    fn string(&mut self, _i: u32, s: &str) {
        self.snap.strings.push(s);
    }
}
