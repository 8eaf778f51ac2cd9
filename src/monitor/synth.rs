//! Synthetic heap series for the verdict's tests (test-only): a seeded PRNG and a
//! per-second heap model with V8-like major-GC triggers, after the generator described in
//! HEURISTICS.md. The live set follows a scenario; allocation promotes garbage into the
//! old generation; a major GC runs when old-space usage crosses the trigger (1.5 × the
//! last floor, at least +32 MiB), leaves some floating garbage (noise) and reports the
//! floor. Missing buckets arise naturally when majors are rare.

pub const MIB: f64 = 1024.0 * 1024.0;
pub const MIN_S: f64 = 60.0;
pub const HOUR_S: f64 = 3600.0;

/// xorshift64* — small, seedable, good enough for noise.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Allocation rate, bytes/s, at a second (may draw from the rng for bursts).
pub type AllocFn = Box<dyn FnMut(f64, &mut Rng) -> f64>;

/// What the heap does, as functions of seconds since start.
pub struct Scenario {
    /// Bytes live at second `t` (the floor the GC would find without floating garbage).
    pub live: Box<dyn Fn(f64) -> f64>,
    /// Allocation rate, bytes/s, at second `t` (may use the rng for bursts).
    pub alloc: AllocFn,
    /// Fraction of allocations promoted to the old generation as garbage.
    pub promote: f64,
    /// Floating garbage a major GC leaves, uniform in [0, this), bytes.
    pub floating: f64,
}

/// A major GC: epoch ms and the old-space floor after it.
#[derive(Debug, Clone, Copy)]
pub struct Major {
    pub t_ms: f64,
    pub floor: f64,
}

/// Run `scenario` for `seconds`, calling `on_major` at each major GC and `on_tick` every
/// `interval_s` seconds with (t_ms, heap_used).
pub fn run(
    mut s: Scenario,
    seed: u64,
    seconds: u64,
    interval_s: u64,
    mut on_major: impl FnMut(Major),
    mut on_tick: impl FnMut(f64, f64),
) {
    let mut rng = Rng::new(seed);
    let mut floor = (s.live)(0.0);
    let mut garbage = 0.0;
    let mut trigger = (floor * 1.5).max(floor + 32.0 * MIB);
    for sec in 0..seconds {
        let t = sec as f64;
        let live = (s.live)(t);
        garbage += (s.alloc)(t, &mut rng) * s.promote;
        let used = live + garbage;
        if used >= trigger {
            let floating = rng.uniform() * s.floating;
            garbage = floating;
            floor = live + floating;
            trigger = (floor * 1.5).max(floor + 32.0 * MIB);
            on_major(Major {
                t_ms: t * 1000.0,
                floor,
            });
        }
        if sec % interval_s == 0 {
            // Young generation noise on top of the old space.
            on_tick(t * 1000.0, live + garbage + rng.uniform() * 16.0 * MIB);
        }
    }
}

/// Constant allocation rate.
pub fn steady(rate: f64) -> AllocFn {
    Box::new(move |_, _| rate)
}

/// Traffic that switches between `low` and `high` bytes/s in bursts of 1–5 minutes.
pub fn bursty(low: f64, high: f64) -> AllocFn {
    let mut until = 0.0;
    let mut rate = low;
    Box::new(move |t, rng| {
        if t >= until {
            rate = if rng.uniform() < 0.4 { high } else { low };
            until = t + 60.0 + rng.uniform() * 240.0;
        }
        rate
    })
}
