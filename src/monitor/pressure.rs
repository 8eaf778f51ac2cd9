//! Heap pressure: how close the process is to V8's heap limit and its GC death spiral.
//! Pure (time is an argument); runs on the JS thread when GC entries or samples arrive.
//!
//! Measured (HEURISTICS.md "GC pressure and the death spiral"), and used instead of the
//! issue's first draft (heap ≥ 85 % of `heap_size_limit`, summed GC time ≥ 50 %):
//! - The limit that matters is the **old generation's**: `heap_size_limit − young
//!   reserve` (3 × the semi-space, 48 MiB by default). Percentages of `heap_size_limit`
//!   mislead: small heaps died at 55–58 % of it. The figure compared is the old-space
//!   floor after the latest major GC.
//! - V8 aborts after repeated major GCs with the old generation ≥ 80 % full and GC
//!   dominating; GC time crossed 50 % at ~75 % full (128 MiB heap).
//! - Summed GC pause time undercounts a spiral (never above 0.35: incremental marking
//!   steps are missing). **Majors per second** (9–290/s in spirals, ≤ 1/s healthy) and
//!   **marking duty** (time from an incremental-marking start to the major GC that ends
//!   it, per unit time: 0.80 in a spiral, 0.01–0.09 healthy) separate it.
//!
//! Levels:
//! - `warn`: floor ≥ `heap_fraction` (0.70) of the old-generation limit, or headroom below
//!   the young reserve, or the floor's projection reaches the limit within 15 min;
//! - `critical`: over the last `gc_window_ms` (3 s) marking duty ≥ `gc_fraction` (0.5) or
//!   ≥ `major_per_second` (3) majors/s, *and* (floor ≥ `heap_fraction`, or GC pause
//!   fraction ≥ 0.10, or event-loop utilization ≥ 0.9);
//! - clearing is hysteretic: `warn` clears when the floor is 5 points below the
//!   threshold and no other warn reason holds; `critical` steps down when the GC signals
//!   fall below half their thresholds.

use std::collections::VecDeque;

/// Thresholds; all are options except the window (physical time, HEURISTICS' 3 s).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub heap_fraction: f64,
    pub gc_fraction: f64,
    pub major_per_second: f64,
    pub gc_window_ms: f64,
    /// A projection to the limit sooner than this is a warn reason.
    pub eta_warn_ms: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            heap_fraction: 0.70,
            gc_fraction: 0.5,
            major_per_second: 3.0,
            gc_window_ms: 3000.0,
            eta_warn_ms: 15.0 * 60e3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    Warn,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Warn => "warn",
            Level::Critical => "critical",
        }
    }
}

/// Why the level is what it is (a bit set).
pub mod reason {
    pub const HEAP: u32 = 1;
    pub const HEADROOM: u32 = 2;
    pub const PROJECTION: u32 = 4;
    pub const GC: u32 = 8;
    pub const NAMES: [(u32, &str); 4] = [
        (HEAP, "heap"),
        (HEADROOM, "headroom"),
        (PROJECTION, "projection"),
        (GC, "gc"),
    ];
}

/// Cumulative GC figures as the JS observer keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GcTotals {
    pub majors: f64,
    pub marking_ms: f64,
    pub pause_ms: f64,
}

/// The pressure reading at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub level: Level,
    pub reasons: u32,
    pub since: f64,
    pub at: f64,
    pub floor_bytes: f64,
    pub old_gen_limit_bytes: f64,
    pub young_reserve_bytes: f64,
    /// floor / old-generation limit.
    pub heap_fraction: f64,
    pub marking_duty: f64,
    pub major_per_second: f64,
    pub gc_pause_fraction: f64,
    pub elu: f64,
    /// Epoch ms when the floor is projected to reach 80 % of the old-generation limit.
    pub projected_limit_at: Option<f64>,
}

#[derive(Debug)]
pub struct Pressure {
    cfg: Config,
    history: VecDeque<(f64, GcTotals)>,
    floor: Option<f64>,
    old_limit: f64,
    young: f64,
    elu: f64,
    eta_ms: Option<f64>,
    reading: Reading,
}

impl Pressure {
    pub fn new(cfg: Config, now: f64) -> Self {
        Self {
            cfg,
            history: VecDeque::with_capacity(256),
            floor: None,
            old_limit: 0.0,
            young: 0.0,
            elu: 0.0,
            eta_ms: None,
            reading: Reading {
                level: Level::None,
                reasons: 0,
                since: now,
                at: now,
                floor_bytes: 0.0,
                old_gen_limit_bytes: 0.0,
                young_reserve_bytes: 0.0,
                heap_fraction: 0.0,
                marking_duty: 0.0,
                major_per_second: 0.0,
                gc_pause_fraction: 0.0,
                elu: 0.0,
                projected_limit_at: None,
            },
        }
    }

    pub fn reading(&self) -> &Reading {
        &self.reading
    }

    pub fn set_limits(&mut self, old_gen_limit: f64, young_reserve: f64) {
        self.old_limit = old_gen_limit;
        self.young = young_reserve;
    }

    pub fn set_floor(&mut self, floor: f64) {
        self.floor = Some(floor);
    }

    pub fn set_elu(&mut self, elu: f64) {
        self.elu = elu;
    }

    /// Milliseconds until the floor reaches 80 % of the limit, from the heap verdict.
    pub fn set_eta(&mut self, eta_ms: Option<f64>) {
        self.eta_ms = eta_ms;
    }

    /// Record cumulative GC totals seen at `now`.
    pub fn gc(&mut self, now: f64, totals: GcTotals) {
        if self.history.back().is_some_and(|(_, t)| *t == totals) {
            return;
        }
        self.history.push_back((now, totals));
        // Keep a little more than one window (at most 256 entries: rates need only the ends).
        while self.history.len() > 2 && self.history[1].0 <= now - self.cfg.gc_window_ms {
            self.history.pop_front();
        }
        while self.history.len() > 256 {
            self.history.pop_front();
        }
    }

    /// Rates over the trailing window: (marking duty, majors/s, pause fraction), or zeros
    /// until the history spans most of a window.
    fn rates(&self, now: f64) -> (f64, f64, f64) {
        let (Some(first), Some(last)) = (self.history.front(), self.history.back()) else {
            return (0.0, 0.0, 0.0);
        };
        let span = now.max(last.0) - first.0;
        if span < 0.8 * self.cfg.gc_window_ms {
            return (0.0, 0.0, 0.0);
        }
        let d = |f: fn(&GcTotals) -> f64| (f(&last.1) - f(&first.1)).max(0.0);
        (
            (d(|t| t.marking_ms) / span).min(1.0),
            d(|t| t.majors) * 1000.0 / span,
            (d(|t| t.pause_ms) / span).min(1.0),
        )
    }

    /// Re-evaluate at `now`. Returns `Some(previous level)` when the level rose or fell.
    pub fn evaluate(&mut self, now: f64) -> Option<Level> {
        let c = &self.cfg;
        let floor = self.floor.unwrap_or(0.0);
        let limit = self.old_limit;
        let frac = if limit > 0.0 { floor / limit } else { 0.0 };
        let (duty, mps, pause) = self.rates(now);
        let prev = self.reading.level;

        let mut warn = 0;
        let heap_threshold = if prev >= Level::Warn {
            c.heap_fraction - 0.05
        } else {
            c.heap_fraction
        };
        if self.floor.is_some() && limit > 0.0 {
            if frac >= heap_threshold {
                warn |= reason::HEAP;
            }
            if limit - floor < self.young && limit > 2.0 * self.young {
                warn |= reason::HEADROOM;
            }
        }
        if self.eta_ms.is_some_and(|e| e < c.eta_warn_ms) {
            warn |= reason::PROJECTION;
        }
        let hot_scale = if prev == Level::Critical { 0.5 } else { 1.0 };
        let gc_hot = duty >= c.gc_fraction * hot_scale || mps >= c.major_per_second * hot_scale;
        let critical = gc_hot && (frac >= c.heap_fraction || pause >= 0.10 || self.elu >= 0.9);

        let (level, reasons) = if critical {
            (Level::Critical, warn | reason::GC)
        } else if warn != 0 {
            (Level::Warn, warn)
        } else {
            (Level::None, 0)
        };
        let projected = self.eta_ms.map(|e| now + e);
        self.reading = Reading {
            level,
            reasons,
            since: if level != prev {
                now
            } else {
                self.reading.since
            },
            at: now,
            floor_bytes: floor,
            old_gen_limit_bytes: limit,
            young_reserve_bytes: self.young,
            heap_fraction: frac,
            marking_duty: duty,
            major_per_second: mps,
            gc_pause_fraction: pause,
            elu: self.elu,
            projected_limit_at: projected,
        };
        (level != prev).then_some(prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    fn p() -> Pressure {
        let mut p = Pressure::new(Config::default(), 0.0);
        p.set_limits(4096.0 * MIB, 48.0 * MIB);
        p
    }

    #[test]
    fn warns_on_the_old_generation_floor_with_hysteresis() {
        let mut p = p();
        p.set_floor(2000.0 * MIB);
        assert_eq!(p.evaluate(1.0), None);
        p.set_floor(0.71 * 4096.0 * MIB);
        assert_eq!(p.evaluate(2.0), Some(Level::None));
        assert_eq!(p.reading().level, Level::Warn);
        assert_eq!(p.reading().reasons, reason::HEAP);
        // 68 % is below 70 % but above the 65 % clearing point: still warn.
        p.set_floor(0.68 * 4096.0 * MIB);
        assert_eq!(p.evaluate(3.0), None);
        p.set_floor(0.60 * 4096.0 * MIB);
        assert_eq!(p.evaluate(4.0), Some(Level::Warn));
        assert_eq!(p.reading().level, Level::None);
    }

    #[test]
    fn a_short_projection_warns() {
        let mut p = p();
        p.set_floor(100.0 * MIB);
        p.set_eta(Some(10.0 * 60e3));
        p.evaluate(1000.0);
        assert_eq!(p.reading().reasons, reason::PROJECTION);
        assert_eq!(p.reading().projected_limit_at, Some(1000.0 + 600e3));
    }

    #[test]
    fn a_gc_spiral_near_the_limit_is_critical_but_busy_gc_on_a_small_heap_is_not() {
        // 10 majors/s with marking duty 0.8 for 4 s.
        let spiral = |p: &mut Pressure| {
            for i in 0..=40 {
                let t = i as f64 * 100.0;
                p.gc(
                    t,
                    GcTotals {
                        majors: i as f64,
                        marking_ms: t * 0.8,
                        pause_ms: t * 0.2,
                    },
                );
            }
            p.evaluate(4000.0);
        };
        let mut hot = p();
        hot.set_floor(0.75 * 4096.0 * MIB);
        spiral(&mut hot);
        assert_eq!(hot.reading().level, Level::Critical);
        assert_eq!(hot.reading().reasons, reason::HEAP | reason::GC);
        assert!((hot.reading().major_per_second - 10.0).abs() < 0.5);
        assert!((hot.reading().marking_duty - 0.8).abs() < 0.05);

        // Healthy rates: 0.5 majors/s, duty 0.05: nothing.
        let mut calm = p();
        calm.set_floor(0.75 * 4096.0 * MIB);
        for i in 0..=40 {
            let t = i as f64 * 100.0;
            calm.gc(
                t,
                GcTotals {
                    majors: (i / 20) as f64,
                    marking_ms: t * 0.05,
                    pause_ms: t * 0.01,
                },
            );
        }
        calm.evaluate(4000.0);
        assert_eq!(
            calm.reading().level,
            Level::Warn,
            "the floor alone still warns"
        );
        assert_eq!(calm.reading().reasons & reason::GC, 0);
    }

    #[test]
    fn gc_rates_need_most_of_a_window() {
        let mut p = p();
        p.set_floor(0.9 * 4096.0 * MIB);
        p.gc(0.0, GcTotals::default());
        p.gc(
            500.0,
            GcTotals {
                majors: 50.0,
                marking_ms: 500.0,
                pause_ms: 500.0,
            },
        );
        p.evaluate(500.0);
        assert_eq!(p.reading().level, Level::Warn);
    }
}
