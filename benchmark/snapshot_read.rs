//! How fast leakguard's snapshot reader and capture histogram run on a real file, and the
//! reader's peak memory. One mode per process so the peak RSS (VmHWM) is the mode's own.
//!
//!   cargo run --release --no-default-features --example snapshot-read -- read FILE
//!   cargo run --release --no-default-features --example snapshot-read -- histogram FILE
//!
//! `read` reads FILE (plain or .gz) into a HeapSnapshot; `histogram` loads FILE (plain
//! JSON) into memory first, then times only the streaming histogram over it in 64 KiB
//! chunks, on one thread, by that thread's CPU clock. Prints one JSON line.

use std::path::Path;
use std::time::Instant;

use leakguard::snapshot::histogram::HistogramBuilder;
use leakguard::snapshot::{reader, Control};

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid local `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// User + system CPU of the whole process (both reader threads), in seconds.
fn process_cpu_s() -> f64 {
    // SAFETY: getrusage fills the zeroed rusage it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn vm_hwm_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, file) = (args[1].as_str(), Path::new(&args[2]));
    let size = std::fs::metadata(file).unwrap().len();
    match mode {
        "read" => {
            let t = Instant::now();
            let c = process_cpu_s();
            let s = reader::read_path(file, &Control::new()).unwrap();
            let wall = t.elapsed().as_secs_f64();
            let cpu = process_cpu_s() - c;
            println!(
                "{{\"mode\":\"read\",\"file_bytes\":{size},\"nodes\":{},\"edges\":{},\"strings\":{},\"wall_s\":{wall:.3},\"cpu_s\":{cpu:.3},\"file_mb_per_s\":{:.1},\"peak_rss_mb\":{:.1}}}",
                s.node_count(),
                s.edge_count(),
                s.strings.len(),
                size as f64 / 1e6 / wall,
                vm_hwm_kb() as f64 / 1024.0
            );
        }
        "histogram" => {
            let data = std::fs::read(file).unwrap();
            let t = thread_cpu_s();
            let mut h = HistogramBuilder::new();
            for c in data.chunks(64 << 10) {
                h.push(c).unwrap();
            }
            let hist = h.finish().unwrap();
            let cpu = thread_cpu_s() - t;
            println!(
                "{{\"mode\":\"histogram\",\"json_bytes\":{},\"classes\":{},\"nodes\":{},\"cpu_s\":{cpu:.3},\"mb_per_s\":{:.1},\"peak_rss_mb\":{:.1}}}",
                data.len(),
                hist.classes.len(),
                hist.node_count,
                data.len() as f64 / 1e6 / cpu,
                vm_hwm_kb() as f64 / 1024.0
            );
        }
        "read-mem" => {
            // The reader over a file already in memory: tokenizing and building alone.
            let data = std::fs::read(file).unwrap();
            let c = process_cpu_s();
            let s = reader::read(&data[..], Some(size), &Control::new()).unwrap();
            let cpu = process_cpu_s() - c;
            println!(
                "{{\"mode\":\"read-mem\",\"nodes\":{},\"cpu_s\":{cpu:.3},\"mb_per_s\":{:.1}}}",
                s.node_count(),
                size as f64 / 1e6 / cpu
            );
        }
        "inflate" | "inflate-flate2" => {
            // The decompressor alone, one thread, to a discarding sink: the reader's
            // (zlib-rs, src/snapshot/gzip.rs) or flate2's default (miniz_oxide).
            let t = thread_cpu_s();
            let f = std::fs::File::open(file).unwrap();
            let n = if mode == "inflate" {
                let mut d = leakguard::snapshot::gzip::GzInflate::new(f);
                std::io::copy(&mut d, &mut std::io::sink()).unwrap()
            } else {
                let mut d = flate2::read::MultiGzDecoder::new(f);
                std::io::copy(&mut d, &mut std::io::sink()).unwrap()
            };
            let cpu = thread_cpu_s() - t;
            println!(
                "{{\"mode\":\"{mode}\",\"out_bytes\":{n},\"cpu_s\":{cpu:.3},\"out_mb_per_s\":{:.1}}}",
                n as f64 / 1e6 / cpu
            );
        }
        m => panic!("unknown mode {m}"),
    }
}
