//! How fast and how well flate2 (the miniz_oxide backend leakguard builds with) gzips a
//! real heap snapshot at each level — the compressor alone, from memory to a counting
//! sink, one thread, timed by that thread's CPU clock so other processes' load on a
//! shared machine does not count.
//!
//!   cargo run --release --no-default-features --example gzip-levels -- snap.heapsnapshot [levels]
//!
//! `levels` defaults to 1,3,6,9. Prints one JSON line per level.

use std::io::{self, Write};
use std::time::Instant;

use flate2::write::GzEncoder;
use flate2::Compression;

struct Count(u64);

impl Write for Count {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: gzip-levels <snapshot.heapsnapshot> [1,3,6,9]");
    let levels: Vec<u32> = args
        .next()
        .unwrap_or_else(|| "1,3,6,9".into())
        .split(',')
        .map(|s| s.trim().parse().expect("levels are integers 0-9"))
        .collect();
    let data = std::fs::read(&path).expect("reading the snapshot");
    let mib = data.len() as f64 / (1 << 20) as f64;
    for level in levels {
        let (c0, w0) = (thread_cpu_s(), Instant::now());
        let mut gz = GzEncoder::new(Count(0), Compression::new(level));
        // 64 KiB writes, as the capture pump receives them from the pipe.
        for chunk in data.chunks(64 * 1024) {
            gz.write_all(chunk).unwrap();
        }
        let out = gz.finish().unwrap().0;
        let (cpu, wall) = (thread_cpu_s() - c0, w0.elapsed().as_secs_f64());
        println!(
            "{{\"level\":{level},\"rawBytes\":{},\"bytes\":{out},\"ratio\":{:.2},\"cpuS\":{cpu:.2},\"wallS\":{wall:.2},\"mibPerCpuS\":{:.1}}}",
            data.len(),
            data.len() as f64 / out as f64,
            mib / cpu
        );
    }
}
