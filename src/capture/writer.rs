//! The compression pump: reads the serialized snapshot from a byte source (the pipe),
//! gzips it with flate2 and writes it to the temporary file, then fsyncs.
//!
//! Runs on the `leakguard-capture` thread, never on the JS thread. Invariants:
//! - it reads until EOF, an error, or an abort; on an error or abort it returns at once and
//!   the caller drops the source (the pipe's read end) so a writer blocked on a full pipe
//!   gets `EPIPE` instead of waiting for ever;
//! - it never writes past `RLIMIT_FSIZE` (the kernel would send `SIGXFSZ`, which kills the
//!   process by default): the write fails with `EFBIG` first;
//! - progress (raw bytes read, time of the last read) is published for watchdogs;
//! - every chunk is also fed, before gzip, to a [`HistogramBuilder`] (the class histogram
//!   of the capture, a few MiB at most): a stream that ends early gives no histogram and
//!   the capture keeps no file; a chunk the histogram cannot parse only drops the
//!   histogram (`histogram_error`), never the file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::error::{Code, Error, Result};
use crate::snapshot::histogram::{ClassHistogram, HistogramBuilder};

/// `LEAKGUARD_NO_HISTOGRAM=1` leaves the class histogram out of captures (`classes: null`):
/// a switch for measuring what the histogram costs with the same binary
/// (benchmark/capture.js's `-nohist` peers), and a way out should it ever misbehave.
pub fn histogram_disabled() -> bool {
    std::env::var_os("LEAKGUARD_NO_HISTOGRAM").is_some_and(|v| v == "1")
}

/// Read size: V8 serializes in 64 KiB chunks (`FileOutputStream::GetChunkSize` in Node's
/// `heap_utils.cc`), and a Linux pipe holds 64 KiB by default.
const CHUNK: usize = 64 * 1024;

/// Shared between the pump and whoever watches it.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    raw_bytes: AtomicU64,
    last_read_ms: AtomicU64,
    aborted: AtomicBool,
    pump_done: AtomicBool,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            raw_bytes: AtomicU64::new(0),
            last_read_ms: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            pump_done: AtomicBool::new(false),
        }
    }
    pub fn raw_bytes(&self) -> u64 {
        self.raw_bytes.load(Ordering::Relaxed)
    }
    /// Milliseconds since the last byte arrived (or since the start, if none has).
    pub fn idle_ms(&self) -> u64 {
        let now = self.started.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_read_ms.load(Ordering::Relaxed))
    }
    /// Restart the no-progress clock (at the fork: the child starts from nothing).
    pub fn touch(&self) {
        self.last_read_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    /// Set when the capture thread has returned (whatever the outcome).
    pub fn set_pump_done(&self) {
        self.pump_done.store(true, Ordering::SeqCst);
    }
    pub fn pump_done(&self) -> bool {
        self.pump_done.load(Ordering::SeqCst)
    }
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
    }
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }
    fn record(&self, n: usize) {
        self.raw_bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.last_read_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// What the pump did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PumpStats {
    pub raw_bytes: u64,
    pub bytes: u64,
    /// Whether the stream looked like a whole snapshot: `{` first, `}` last, and (when
    /// the histogram could read it) the histogram found it whole.
    pub complete: bool,
    pub fsync_ms: f64,
    /// The class histogram of the stream, when it was a whole snapshot it could parse.
    pub histogram: Option<ClassHistogram>,
    /// Why there is no histogram although the stream looked whole.
    pub histogram_error: Option<String>,
    /// Time the capture thread spent counting classes, ms.
    pub histogram_ms: f64,
}

/// A writer that counts bytes and refuses to pass a file-size limit.
#[derive(Debug)]
pub struct LimitedWriter<W: Write> {
    inner: W,
    written: u64,
    limit: u64,
}

impl<W: Write> LimitedWriter<W> {
    pub fn new(inner: W, limit: u64) -> Self {
        Self {
            inner,
            written: 0,
            limit,
        }
    }
    pub fn written(&self) -> u64 {
        self.written
    }
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for LimitedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::from_raw_os_error(libc::EFBIG));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The soft `RLIMIT_FSIZE`, or `u64::MAX` when there is none.
pub fn file_size_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut rl) };
        if rc == 0 && rl.rlim_cur != libc::RLIM_INFINITY {
            #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
            return rl.rlim_cur as u64;
        }
    }
    u64::MAX
}

/// Fault injection for the failure tests (`LEAKGUARD_TEST_FAULT`); never set in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Panic on the capture thread after the first chunk.
    WriterPanic,
    /// Stop reading and close the pipe after the first chunk.
    PipeClose,
    /// Fail the final rename (as a vanished directory would).
    RenameFail,
    /// Fork capture: the child sleeps for ever (a hang the watchdog must detect).
    ChildHang,
    /// Fork capture: the child spins without writing (only the progress timeout sees it).
    ChildSpin,
    /// Fork capture: the child aborts (SIGABRT).
    ChildCrash,
    /// Fork capture: the fast opening pass (one madvise per span) reports a failure, so
    /// the exact pass runs (as when a mapping the kernel refuses sits inside a span).
    SpansFail,
}

impl Fault {
    pub fn from_env() -> Option<Self> {
        match std::env::var("LEAKGUARD_TEST_FAULT").ok()?.as_str() {
            "writer-panic" => Some(Fault::WriterPanic),
            "pipe-close" => Some(Fault::PipeClose),
            "rename-fail" => Some(Fault::RenameFail),
            "child-hang" => Some(Fault::ChildHang),
            "child-spin" => Some(Fault::ChildSpin),
            "child-crash" => Some(Fault::ChildCrash),
            "spans-fail" => Some(Fault::SpansFail),
            _ => None,
        }
    }
}

/// Pump `src` through gzip into `sink` until EOF. `sink` is flushed but not synced.
pub fn pump<R: Read, W: Write>(
    mut src: R,
    sink: W,
    level: u32,
    progress: &Progress,
    fault: Option<Fault>,
) -> Result<(PumpStats, W)> {
    let mut gz = GzEncoder::new(
        BufWriter::with_capacity(CHUNK, sink),
        Compression::new(level),
    );
    let mut buf = vec![0u8; CHUNK];
    let mut first: Option<u8> = None;
    let mut last: Option<u8> = None;
    let mut chunks = 0u64;
    let mut hist = (!histogram_disabled()).then(HistogramBuilder::new);
    let mut hist_error: Option<String> = None;
    let mut hist_time = std::time::Duration::ZERO;
    loop {
        if progress.is_aborted() {
            return Err(Error::new(Code::CaptureAborted, "the capture was aborted"));
        }
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::io(
                    Code::CapturePipeFailed,
                    "reading the snapshot pipe",
                    &e,
                ))
            }
        };
        chunks += 1;
        match fault {
            Some(Fault::WriterPanic) if chunks == 2 => panic!("injected writer panic"),
            Some(Fault::PipeClose) if chunks == 2 => {
                return Err(Error::new(
                    Code::CapturePipeFailed,
                    "the snapshot pipe was closed (injected fault)",
                ))
            }
            _ => {}
        }
        progress.record(n);
        let data = &buf[..n];
        first.get_or_insert(data[0]);
        if let Some(b) = data.iter().rev().find(|b| !b.is_ascii_whitespace()) {
            last = Some(*b);
        }
        if let Some(h) = hist.as_mut() {
            let t = Instant::now();
            if let Err(e) = h.push(data) {
                hist_error = Some(e.message);
                hist = None; // free what it held; the file is still written
            }
            hist_time += t.elapsed();
        }
        gz.write_all(data)
            .map_err(|e| Error::io(Code::CaptureWriteFailed, "writing the snapshot", &e))?;
    }
    if progress.is_aborted() {
        return Err(Error::new(Code::CaptureAborted, "the capture was aborted"));
    }
    let buffered = gz
        .finish()
        .map_err(|e| Error::io(Code::CaptureWriteFailed, "finishing the gzip stream", &e))?;
    let sink = buffered
        .into_inner()
        .map_err(|e| Error::io(Code::CaptureWriteFailed, "writing the snapshot", e.error()))?;
    let mut complete = first == Some(b'{') && last == Some(b'}');
    let mut histogram = None;
    if let Some(h) = hist {
        let t = Instant::now();
        match h.finish() {
            Ok(v) => histogram = Some(v),
            // It parsed every byte but the snapshot stopped short of its end (a stream
            // cut right after a '}'): not whole, whatever the last byte says.
            Err(e) => {
                complete = false;
                hist_error = Some(e.message);
            }
        }
        hist_time += t.elapsed();
    }
    let stats = PumpStats {
        raw_bytes: progress.raw_bytes(),
        bytes: 0,
        complete,
        fsync_ms: 0.0,
        histogram,
        histogram_error: hist_error,
        histogram_ms: hist_time.as_secs_f64() * 1e3,
    };
    Ok((stats, sink))
}

/// Pump into a file under the file-size limit, then fsync it.
pub fn pump_to_file<R: Read>(
    src: R,
    file: File,
    level: u32,
    progress: &Progress,
    fault: Option<Fault>,
) -> Result<PumpStats> {
    let sink = LimitedWriter::new(file, file_size_limit());
    let (mut stats, sink) = pump(src, sink, level, progress, fault)?;
    stats.bytes = sink.written();
    let file = sink.into_inner();
    let t = Instant::now();
    file.sync_all()
        .map_err(|e| Error::io(Code::CaptureWriteFailed, "fsync of the snapshot", &e))?;
    stats.fsync_ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(b).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn round_trips_and_sees_a_whole_snapshot() {
        let raw = format!(
            "{{\"snapshot\":{{}},\"nodes\":[{}],\"strings\":[]}}\n",
            "1,".repeat(100_000) + "1"
        );
        let p = Progress::new();
        let (stats, sink) = pump(raw.as_bytes(), Vec::new(), 1, &p, None).unwrap();
        assert_eq!(stats.raw_bytes, raw.len() as u64);
        assert!(stats.complete);
        assert_eq!(gunzip(&sink), raw.as_bytes());
        assert!(sink.len() < raw.len() / 10);
    }

    /// A small but whole snapshot in Node 20's layout: the root, two `Foo` objects.
    const SNAP: &str = concat!(
        r#"{"snapshot":{"meta":{"node_fields":["type","name","id","self_size","edge_count","trace_node_id","detachedness"],"#,
        r#""node_types":[["hidden","array","string","object","code","closure","regexp","number","native","synthetic","concatenated string","sliced string","symbol","bigint","object shape"],"string","number","number","number","number","number"],"#,
        r#""edge_fields":["type","name_or_index","to_node"],"edge_types":[["context","element","property","internal","hidden","shortcut","weak"],"string_or_number","node"],"#,
        r#""trace_function_info_fields":[],"trace_node_fields":[],"sample_fields":[],"location_fields":[]},"node_count":3,"edge_count":2,"trace_function_count":0},"#,
        "\n\"nodes\":[9,0,1,0,2,0,0\n,3,1,3,24,0,0,0\n,3,1,5,32,0,0,0],\n",
        r#""edges":[2,2,7,2,2,14],"trace_function_infos":[],"trace_tree":[],"samples":[],"locations":[],"#,
        "\n\"strings\":[\"\",\"Foo\",\"x\"]}\n"
    );

    /// Push `data` in reads of `n` bytes.
    struct Chunked<'a>(&'a [u8], usize);
    impl Read for Chunked<'_> {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(b.len()).min(self.1);
            b[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_pump_counts_classes_on_the_way_and_a_stream_cut_after_a_brace_is_not_whole() {
        for n in [1, 7, 64 * 1024] {
            let p = Progress::new();
            let (stats, sink) = pump(Chunked(SNAP.as_bytes(), n), Vec::new(), 1, &p, None).unwrap();
            assert!(stats.complete, "{:?}", stats.histogram_error);
            let h = stats.histogram.expect("a histogram");
            let foo = h.classes.iter().find(|c| c.name == "Foo").unwrap();
            assert_eq!((foo.count, foo.self_size), (2, 56));
            assert_eq!(h.node_count, 3);
            assert_eq!(
                gunzip(&sink),
                SNAP.as_bytes(),
                "the file is the stream, byte for byte"
            );
        }
        // Cut where a '}' ends the stream: the old first/last-byte check would call it whole.
        let cut = SNAP.find("},\n\"nodes\"").unwrap() + 1;
        assert!(SNAP[..cut].ends_with('}'));
        let p = Progress::new();
        let (stats, _) = pump(&SNAP.as_bytes()[..cut], Vec::new(), 1, &p, None).unwrap();
        assert!(!stats.complete);
        assert!(stats.histogram.is_none());
        assert!(stats.histogram_error.is_some());
    }

    #[test]
    fn a_truncated_stream_is_not_complete() {
        let p = Progress::new();
        let (stats, _) = pump(&b"{\"nodes\":[1,2,"[..], Vec::new(), 1, &p, None).unwrap();
        assert!(!stats.complete);
    }

    #[test]
    fn the_limit_fails_with_efbig_before_writing_past_it() {
        let data: Vec<u8> = (0..2_000_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let p = Progress::new();
        let err = pump(
            &data[..],
            LimitedWriter::new(Vec::new(), 10_000),
            0,
            &p,
            None,
        )
        .unwrap_err();
        assert_eq!(err.code, Code::CaptureWriteFailed);
        assert!(
            err.message.contains("too large") || err.message.contains("os error 27"),
            "{}",
            err.message
        );
    }

    #[test]
    fn abort_stops_the_pump() {
        let p = Progress::new();
        p.abort();
        let err = pump(&b"{}"[..], Vec::new(), 1, &p, None).unwrap_err();
        assert_eq!(err.code, Code::CaptureAborted);
    }

    #[test]
    fn injected_pipe_close_fails_with_the_pipe_code() {
        let data = vec![b' '; CHUNK * 3];
        let p = Progress::new();
        // A slice reader returns all at once; chunk it so the fault fires on the second read.
        struct Chunked<'a>(&'a [u8]);
        impl Read for Chunked<'_> {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(b.len()).min(1000);
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let err = pump(Chunked(&data), Vec::new(), 1, &p, Some(Fault::PipeClose)).unwrap_err();
        assert_eq!(err.code, Code::CapturePipeFailed);
    }
}
