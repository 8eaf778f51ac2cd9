//! Memory monitoring: the samples the JS sampler hands over, a fixed-size ring of them,
//! the leak verdicts (heap, native) and the heap-pressure rules.
//!
//! Runs on the JS thread, inside the binding's `push`/`gc` calls: every call does O(1)
//! work except when a floor bucket closes (a verdict evaluation, O(buckets²) ≤ ~1,800
//! pairs). Nothing here allocates per sample: the ring is allocated once
//! ([`RING_CAPACITY`] samples of [`FIELDS`] `f64`s).
//!
//! Series:
//! - **heap**: the old-space floor after each major GC (from the GC observer), through
//!   [`verdict::Verdict`] with the old-generation limit as its limit;
//! - **native**: `rss − heapTotal` and `external` (which includes `arrayBuffers`), each the
//!   minimum per bucket of the samples, each through its own verdict; the report is the
//!   more severe of the two (`source` names it), since a heap snapshot cannot show either.

pub mod pressure;
pub mod stats;
pub mod verdict;

#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod synth;

use pressure::{GcTotals, Level, Pressure};
use verdict::{Report, State, Verdict};

/// Native growth slower than this fraction of a growing heap's slope follows the heap.
pub const NATIVE_IN_STEP: f64 = 0.1;

/// Samples kept: 720 × 29 × 8 B ≈ 163 KiB; two hours at the default 10 s interval.
pub const RING_CAPACITY: usize = 720;

macro_rules! fields {
    ($($name:ident => $js:literal),+ $(,)?) => {
        /// Index of each figure in a [`Sample`].
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy)]
        #[repr(usize)]
        pub enum F { $($name),+ }
        /// The JS names of a sample's figures, in layout order (the binding exports them so
        /// JS builds the same layout).
        pub const FIELDS: &[&str] = &[$($js),+];
    };
}

fields! {
    Time => "time",
    Rss => "rss",
    HeapTotal => "heapTotal",
    HeapUsed => "heapUsed",
    External => "external",
    ArrayBuffers => "arrayBuffers",
    HeapSizeLimit => "heapSizeLimit",
    TotalAvailableSize => "totalAvailableSize",
    MallocedMemory => "mallocedMemory",
    NativeContexts => "numberOfNativeContexts",
    DetachedContexts => "numberOfDetachedContexts",
    OldGenLimit => "oldGenerationLimit",
    YoungReserve => "youngGenerationReserve",
    MemoryLimit => "memoryLimit",
    GcMinorCount => "gcMinorCount",
    GcMajorCount => "gcMajorCount",
    GcIncrementalCount => "gcIncrementalCount",
    GcWeakCount => "gcWeakCallbacksCount",
    GcMinorMs => "gcMinorMs",
    GcMajorMs => "gcMajorMs",
    GcIncrementalMs => "gcIncrementalMs",
    GcWeakMs => "gcWeakCallbacksMs",
    MarkingMs => "gcMarkingMs",
    MajorFloor => "majorFloorBytes",
    LoopP50 => "loopDelayP50Ms",
    LoopP99 => "loopDelayP99Ms",
    LoopMax => "loopDelayMaxMs",
    Elu => "elu",
    WindowMs => "windowMs",
}

/// Number of figures in a sample.
pub const N: usize = FIELDS.len();

/// One reading, laid out as [`FIELDS`]. Counters (`gc*`) are cumulative since the monitor
/// started; loop delay and ELU are over the window since the previous sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample(pub [f64; N]);

impl Sample {
    pub fn get(&self, f: F) -> f64 {
        self.0[f as usize]
    }
}

/// Fixed-capacity ring; the oldest sample is overwritten.
#[derive(Debug)]
pub struct Ring {
    buf: Vec<Sample>,
    head: usize,
    len: usize,
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        Self {
            buf: vec![Sample([0.0; N]); capacity.max(1)],
            head: 0,
            len: 0,
        }
    }
    pub fn push(&mut self, s: Sample) {
        let cap = self.buf.len();
        self.buf[(self.head + self.len) % cap] = s;
        if self.len < cap {
            self.len += 1;
        } else {
            self.head = (self.head + 1) % cap;
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Sample> {
        let cap = self.buf.len();
        (0..self.len).map(move |i| &self.buf[(self.head + i) % cap])
    }
    pub fn latest(&self) -> Option<&Sample> {
        (self.len > 0).then(|| &self.buf[(self.head + self.len - 1) % self.buf.len()])
    }
    /// Bytes held by the ring's storage.
    pub fn bytes(&self) -> usize {
        self.buf.capacity() * std::mem::size_of::<Sample>()
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub interval_ms: f64,
    pub verdict: verdict::Config,
    pub pressure: pressure::Config,
    pub ring_capacity: usize,
}

impl Config {
    pub fn for_interval(interval_ms: f64) -> Self {
        Self {
            interval_ms,
            verdict: verdict::Config::for_interval(interval_ms),
            pressure: pressure::Config::default(),
            ring_capacity: RING_CAPACITY,
        }
    }
}

/// What changed in one call (a bit set), so JS fetches reports only when needed.
pub mod changed {
    pub const HEAP: u32 = 1;
    pub const NATIVE: u32 = 2;
    pub const PRESSURE: u32 = 4;
}

/// Which native series a native report comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeSource {
    RssMinusHeapTotal,
    External,
}

impl NativeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            NativeSource::RssMinusHeapTotal => "rss-heapTotal",
            NativeSource::External => "external",
        }
    }
}

#[derive(Debug)]
pub struct Monitor {
    cfg: Config,
    ring: Ring,
    heap: Verdict,
    rss_native: Verdict,
    external: Verdict,
    /// Committed heap, only for its slope (native growth in step with the heap).
    heap_total: Verdict,
    native_state: State,
    pressure: Pressure,
}

fn severity(s: State) -> u8 {
    match s {
        State::WarmingUp => 0,
        State::Healthy => 1,
        State::Growing => 2,
        State::Leak => 3,
    }
}

impl Monitor {
    pub fn new(cfg: Config, now: f64) -> Self {
        Self {
            ring: Ring::new(cfg.ring_capacity),
            heap: Verdict::new(cfg.verdict.clone(), now),
            rss_native: Verdict::new(cfg.verdict.clone(), now),
            external: Verdict::new(cfg.verdict.clone(), now),
            heap_total: Verdict::new(cfg.verdict.clone(), now),
            native_state: State::WarmingUp,
            pressure: Pressure::new(cfg.pressure.clone(), now),
            cfg,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// GC observer batch: cumulative totals and the post-major floors `(epoch ms, bytes)`
    /// seen in it. Re-evaluates pressure (majors can come faster than samples).
    pub fn gc(&mut self, now: f64, totals: GcTotals, floors: &[(f64, f64)]) -> u32 {
        for &(t, b) in floors {
            self.heap.observe(t, b);
        }
        if let Some(&(_, b)) = floors.last() {
            self.pressure.set_floor(b);
        }
        self.pressure.gc(now, totals);
        let mut out = 0;
        if !floors.is_empty() && self.pressure.evaluate(now).is_some() {
            out |= changed::PRESSURE;
        }
        out
    }

    /// One sample from the sampler: store it, feed the native series, re-evaluate.
    pub fn push(&mut self, s: Sample) -> u32 {
        let now = s.get(F::Time);
        self.ring.push(s);
        let old_limit = s.get(F::OldGenLimit);
        let heap_total = s.get(F::HeapTotal);
        self.heap.set_limit(Some(old_limit));
        let mem = s.get(F::MemoryLimit);
        let native_limit = (mem > heap_total).then_some(mem - heap_total);
        self.rss_native.set_limit(native_limit);
        self.external.set_limit(native_limit);
        self.heap.observe_level(now, s.get(F::HeapUsed));
        self.rss_native.observe(now, s.get(F::Rss) - heap_total);
        self.external.observe(now, s.get(F::External));
        self.heap_total.observe(now, heap_total);

        let mut out = 0;
        if self.heap.evaluate(now).is_some() {
            out |= changed::HEAP;
        }
        self.rss_native.evaluate(now);
        self.external.evaluate(now);
        self.heap_total.evaluate(now);
        let native = self.native_report().0.state;
        if native != self.native_state {
            self.native_state = native;
            out |= changed::NATIVE;
        }
        self.pressure.set_limits(old_limit, s.get(F::YoungReserve));
        self.pressure.set_elu(s.get(F::Elu));
        // The recent trend's ETA; with sparse floors, the verdict's own projection.
        let eta = self.heap.eta_to_target(now).or_else(|| {
            let r = self.heap.report();
            matches!(r.state, State::Growing | State::Leak)
                .then_some(r.projected_limit_at)
                .flatten()
                .map(|p| (p - now).max(0.0))
        });
        self.pressure.set_eta(eta);
        self.pressure.gc(
            now,
            GcTotals {
                majors: s.get(F::GcMajorCount),
                marking_ms: s.get(F::MarkingMs),
                pause_ms: s.get(F::GcMinorMs)
                    + s.get(F::GcMajorMs)
                    + s.get(F::GcIncrementalMs)
                    + s.get(F::GcWeakMs),
            },
        );
        if self.pressure.evaluate(now).is_some() {
            out |= changed::PRESSURE;
        }
        out
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    pub fn heap_report(&self) -> &Report {
        self.heap.report()
    }

    /// The more severe native verdict (ties: `rss − heapTotal`), and which series it is.
    ///
    /// V8 keeps bookkeeping outside `heapTotal` that grows with the heap (measured in a
    /// retained-Map leak: `rss − heapTotal` rose at ~1.7 % of the heap floor's slope), so
    /// native growth below [`NATIVE_IN_STEP`] of the heap's slope (the floor's when it
    /// grows, else `heapTotal`'s) is reported as `healthy` ("grows in step with the
    /// heap"): the heap verdict covers it.
    pub fn native_report(&self) -> (Report, NativeSource) {
        let (a, b) = (self.rss_native.report(), self.external.report());
        let (r, src) = if severity(b.state) > severity(a.state) {
            (b, NativeSource::External)
        } else {
            (a, NativeSource::RssMinusHeapTotal)
        };
        let mut r = r.clone();
        let heap = self.heap.report();
        let growing = |s: State| matches!(s, State::Growing | State::Leak);
        // The heap's growth: its floor's slope when that is growing, else the slope of the
        // committed heap (heapTotal) — available even before major GCs give floors.
        let floor_slope = if growing(heap.state) {
            heap.slope_bytes_per_hour
        } else {
            0.0
        };
        let heap_slope = floor_slope.max(self.heap_total.report().slope_bytes_per_hour);
        if growing(r.state) && r.slope_bytes_per_hour < NATIVE_IN_STEP * heap_slope {
            r.state = State::Healthy;
            r.tier = None;
            r.projected_limit_at = None;
            r.detail = "grows in step with the heap (V8's own bookkeeping), not on its own";
        }
        (r, src)
    }

    pub fn pressure(&self) -> &pressure::Reading {
        self.pressure.reading()
    }

    pub fn pressure_level(&self) -> Level {
        self.pressure.reading().level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rss: f64, heap_total: f64, external: f64) -> Sample {
        let mut s = Sample([0.0; N]);
        s.0[F::Time as usize] = t;
        s.0[F::Rss as usize] = rss;
        s.0[F::HeapTotal as usize] = heap_total;
        s.0[F::External as usize] = external;
        s.0[F::OldGenLimit as usize] = 4096.0 * 1024.0 * 1024.0;
        s.0[F::YoungReserve as usize] = 48.0 * 1024.0 * 1024.0;
        s
    }

    #[test]
    fn ring_keeps_the_newest_in_order() {
        let mut r = Ring::new(3);
        for i in 0..5 {
            r.push(sample(i as f64, 0.0, 0.0, 0.0));
        }
        let ts: Vec<f64> = r.iter().map(|s| s.get(F::Time)).collect();
        assert_eq!(ts, [2.0, 3.0, 4.0]);
        assert_eq!(r.latest().unwrap().get(F::Time), 4.0);
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn field_table_matches_the_layout() {
        assert_eq!(FIELDS[F::WindowMs as usize], "windowMs");
        assert_eq!(FIELDS.len(), F::WindowMs as usize + 1);
    }

    #[test]
    fn native_growth_in_step_with_a_leaking_heap_is_not_a_native_leak() {
        // A 2 MiB/s heap leak with a major GC every second; rss − heapTotal grows at 2 %
        // of that (V8's bookkeeping), external not at all.
        let mib = 1024.0 * 1024.0;
        let mut m = Monitor::new(Config::for_interval(100.0), 0.0);
        for i in 0..1200 {
            let t = i as f64 * 100.0;
            let floor = 50.0 * mib + 2.0 * mib * t / 1000.0;
            if i % 10 == 0 {
                m.gc(
                    t,
                    GcTotals {
                        majors: i as f64 / 10.0,
                        ..GcTotals::default()
                    },
                    &[(t, floor)],
                );
            }
            let heap_total = floor * 1.5;
            m.push(sample(
                t,
                heap_total + 40.0 * mib + 0.02 * (floor - 50.0 * mib),
                heap_total,
                1e6,
            ));
        }
        assert_eq!(m.heap_report().state, State::Leak);
        let (r, _) = m.native_report();
        assert_eq!(r.state, State::Healthy, "{r:?}");
        assert!(r.detail.contains("in step"));
    }

    #[test]
    fn native_growth_gets_its_own_verdict_while_the_heap_has_none() {
        // 100 ms interval: warm-up 9 s, window 72 s, hold 18 s. External memory grows
        // 1 MiB per second; rss grows with it; the heap sees no major GC at all.
        let mut m = Monitor::new(Config::for_interval(100.0), 0.0);
        let mut native_changes = 0;
        for i in 0..1200 {
            let t = i as f64 * 100.0;
            let ext = 10e6 + i as f64 * 104_857.6;
            if m.push(sample(t, 200e6 + ext, 50e6, ext)) & changed::NATIVE != 0 {
                native_changes += 1;
            }
        }
        let (r, _) = m.native_report();
        assert_eq!(r.state, State::Leak, "{r:?}");
        assert!(native_changes >= 2);
        // No major GC and a flat heapUsed: the quiet rule says healthy, never leak.
        assert_eq!(m.heap_report().state, State::Healthy);
    }
}
