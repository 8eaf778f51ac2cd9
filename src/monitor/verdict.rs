//! The leak verdict over one series of floors (the heap's post-major-GC old-space usage,
//! or a native figure's per-bucket minimum). Pure: time is an argument, nothing reads a
//! clock; runs on the JS thread inside the monitor's `push`, once per closed bucket.
//!
//! ## Algorithm (HEURISTICS.md "Leak verdict", measured on seeded synthetic series)
//!
//! 1. **Floors, bucketed in time.** Raw heapUsed is a sawtooth; only the heap right after a
//!    major GC says what is live. Observations are grouped into buckets at least
//!    `max(median interval between observations, window / MAX_BUCKETS)` wide, and each
//!    bucket contributes its minimum. A bucket with no observation is *missing*, never
//!    filled in (filling from sawtooth samples gave 20/20 false alarms). HEURISTICS used
//!    3 × the median interval; with real processes at `intervalMs: 100` majors came only
//!    every 3–7 s, so 3× left too few points for a verdict within a minute. One interval
//!    keeps 0/20 false alarms on every synthetic scenario here (see `scenarios.rs`).
//! 2. **Warm-up.** No verdict before `warm_up_ms` of watching *and* `MIN_POINTS` (5)
//!    buckets. After twice the warm-up, a process with too few floors is `healthy` if its
//!    floors do not grow (≤ 1.25× the first) and its sampled `heapUsed` (max over the last
//!    warm-up period) is ≤ 1.25× that of the first warm-up period + 8 MiB: majors are rare
//!    when nothing fills the heap (a bounded LRU ran 90 s at `intervalMs: 100` with no major
//!    GC at all). If that stops holding before enough floors arrive, the state returns to
//!    `warming-up`. Sampled levels never make a leak (HEURISTICS: 20/20 false alarms).
//! 3. **Suspected** (window `window_ms`): the Mann–Kendall test rejects "no trend" at
//!    the one-sided 1 % level (p exact for ≤ 12 points, so 5 strictly rising floors are
//!    enough; normal approximation above), the
//!    Theil–Sen slope's 99 % lower bound > 0, the slope ≥ max(5 MiB/h, 0.5 % of the limit
//!    per hour), and the last third of the window still growing (its own Sen slope ≥ 0.6 ×
//!    the window's) with a new maximum — the plateau test: a cache that filled and
//!    stopped, or a one-off step, fails it. While this holds the state is `growing`
//!    ("growth consistent with a leak or a still-filling cache"); held for `hold_ms` it
//!    becomes `leak`.
//! 4. **Urgent** (recent quarter of the window, ≥ 5 buckets): the recent Sen slope is
//!    significant (Mann–Kendall p < 1 %, lower bound > 0) and projects the floor to reach
//!    `PROJECTION_FRACTION` (80 %) of the limit within `urgent_horizon_ms` (2 h, physical
//!    time: it does not scale with the interval). Three consecutive evaluations → `leak`.
//! 5. **Confirmed** (`day_ms`, 24 h at the default interval): the lowest floor of the last
//!    day above the previous day's by 1 %, for 3 consecutive checks one `day_ms / 24` apart,
//!    after two days. Slow but the only tier that separates a 1 MB/h leak from a daily
//!    load cycle.
//! 6. **Geometric** (sparse floors; not in HEURISTICS): a leaking heap makes V8 *grow* the
//!    heap rather than collect it, so majors come at geometric steps (measured here with a
//!    retained Map at ~3 MB/s and a 4 GiB limit: floors 10 → 34 → 69 → 184 MB at 2, 9, 19
//!    and 55 s, then none for a minute) and a trend test never gets its 5 points in a
//!    window. Three consecutive floors each ≥ 1.2× (and 1 MiB above) the one before, ≥ 2×
//!    overall, after warm-up, is `growing`; still so after `hold_ms`, `leak`. A new floor
//!    during the hold that does not continue the run clears it, so where floors are dense
//!    only sustained geometric growth survives the hold. Floating garbage moves a floor by
//!    a few percent, a one-off step makes one jump; a cache that keeps filling this fast is
//!    reported too. When floors are sparse the last three are kept up to four windows back.
//! 7. A `leak` stays until neither tier has held for `hold_ms` (hysteresis), then the
//!    state returns to `healthy`.
//!
//! `confidence` is 1 − p of the deciding Mann–Kendall test: the strength of the evidence
//! that the floor rises (≈ 0.5 for no trend, → 1 for a clear one; 0 while warming up).

use std::collections::VecDeque;

use super::stats::{mk_test, sen_slope};

/// Bucket count cap in a window: keeps the O(n²) statistics ≤ ~1,800 pairs per evaluation.
pub const MAX_BUCKETS: usize = 60;
/// Buckets needed before any verdict (and for the urgent tier's recent window).
pub const MIN_POINTS: usize = 5;
/// With fewer than [`MIN_POINTS`] floors after twice the warm-up, the state is `healthy` if
/// the last floor is within this factor of the first.
pub const QUIET_GROWTH: f64 = 1.25;
/// The geometric tier (sparse major GCs): this many consecutive floors…
pub const GEOMETRIC_RUN: usize = 3;
/// …each at least this factor above the one before…
pub const GEOMETRIC_STEP: f64 = 1.2;
/// …and the last at least this factor above the first.
pub const GEOMETRIC_TOTAL: f64 = 2.0;
/// …plus this much, bytes, for the sampled level (the young generation alone swings by
/// up to 16 MiB while its semi-spaces grow).
pub const QUIET_SLACK: f64 = 8.0 * 1024.0 * 1024.0;
/// Trend tests reject "no trend" below this one-sided p-value.
pub const P_MAX: f64 = 0.01;
/// One-sided 1 % normal quantile, used for the Mann–Kendall test and the Sen bound.
pub const Z_99: f64 = 2.326;
/// Projection target: V8 aborts once the old generation stays ≥ 80 % full with GC
/// dominating (heap.cc; small heaps died at ~80 % here, HEURISTICS.md).
pub const PROJECTION_FRACTION: f64 = 0.8;
/// The confirmed tier's margin: last day's lowest floor > previous day's × (1 + this).
pub const CONFIRM_MARGIN: f64 = 0.01;
const MIB: f64 = 1024.0 * 1024.0;
const HOUR_MS: f64 = 3_600_000.0;

/// The verdict's time constants and thresholds. [`Config::for_interval`] derives them from
/// the sampling interval; the default interval (10 s) gives HEURISTICS' hour-scale windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub warm_up_ms: f64,
    pub window_ms: f64,
    pub hold_ms: f64,
    pub day_ms: f64,
    /// Physical time: how soon a projected limit makes growth urgent.
    pub urgent_horizon_ms: f64,
    pub min_slope_bytes_per_hour: f64,
    /// Also ≥ this fraction of the limit per hour.
    pub min_slope_limit_fraction_per_hour: f64,
}

impl Config {
    /// Multiples of the interval: warm-up 90 (15 min at 10 s), window 720 (2 h), hold 180
    /// (30 min), day 8,640 (24 h). At `intervalMs: 100` a fast leak is called in ~30 s.
    pub fn for_interval(interval_ms: f64) -> Self {
        Self {
            warm_up_ms: 90.0 * interval_ms,
            window_ms: 720.0 * interval_ms,
            hold_ms: 180.0 * interval_ms,
            day_ms: 8640.0 * interval_ms,
            urgent_horizon_ms: 2.0 * HOUR_MS,
            min_slope_bytes_per_hour: 5.0 * MIB,
            min_slope_limit_fraction_per_hour: 0.005,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    WarmingUp,
    Healthy,
    Growing,
    Leak,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::WarmingUp => "warming-up",
            State::Healthy => "healthy",
            State::Growing => "growing",
            State::Leak => "leak",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Geometric,
    Urgent,
    Suspected,
    Confirmed,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Geometric => "geometric",
            Tier::Urgent => "urgent",
            Tier::Suspected => "suspected",
            Tier::Confirmed => "confirmed",
        }
    }
}

/// A verdict at one instant. Byte figures are of the series' floor.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub state: State,
    /// Theil–Sen slope over the window (the recent window for the urgent tier), bytes/h.
    pub slope_bytes_per_hour: f64,
    /// Its one-sided 99 % lower bound, bytes/h.
    pub slope_lower_bytes_per_hour: f64,
    pub confidence: f64,
    /// The latest bucket's floor, bytes (0 before the first).
    pub floor_bytes: f64,
    /// Epoch ms when the floor reaches the projection target, for `growing`/`leak`.
    pub projected_limit_at: Option<f64>,
    /// The projection target (80 % of the limit), bytes, when a limit is known.
    pub target_bytes: Option<f64>,
    /// Which tier decided a `growing`/`leak` state.
    pub tier: Option<Tier>,
    /// Floors (buckets) in the window.
    pub points: usize,
    /// Epoch ms the current state began.
    pub since: f64,
    pub evaluated_at: f64,
    pub detail: &'static str,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    start: f64,
    width: f64,
    min: f64,
    min_t: f64,
    count: u32,
}

/// One series and its verdict state. Feed it with [`Verdict::observe`], ask with
/// [`Verdict::evaluate`].
#[derive(Debug)]
pub struct Verdict {
    cfg: Config,
    started: f64,
    limit: Option<f64>,
    obs_times: VecDeque<f64>,
    current: Option<Bucket>,
    /// Closed buckets' (time of minimum, minimum), within the window.
    points: VecDeque<(f64, f64)>,
    /// Minimum per `day_ms / 24` block, for the confirmed tier (≤ 49 blocks).
    blocks: VecDeque<(f64, f64)>,
    block: Option<(f64, f64)>,
    /// The sampled level (heapUsed): its maximum over the first warm-up period, and
    /// maxima per `warm_up_ms / 30` slice over the last warm-up period (quiet rule only).
    level_first_max: Option<f64>,
    level_recent: VecDeque<(f64, f64)>,
    confirm_checks: u32,
    urgent_count: u32,
    suspected_since: Option<f64>,
    geometric_since: Option<f64>,
    /// Whether this evaluation has a new point (tiers counted per point).
    dirty_eval: bool,
    last_tier_true: Option<f64>,
    dirty: bool,
    report: Report,
    scratch: Vec<f64>,
    ys: Vec<f64>,
}

impl Verdict {
    pub fn new(cfg: Config, now: f64) -> Self {
        Self {
            cfg,
            started: now,
            limit: None,
            obs_times: VecDeque::with_capacity(33),
            current: None,
            points: VecDeque::with_capacity(MAX_BUCKETS + 8),
            blocks: VecDeque::with_capacity(50),
            block: None,
            level_first_max: None,
            level_recent: VecDeque::with_capacity(32),
            confirm_checks: 0,
            urgent_count: 0,
            suspected_since: None,
            geometric_since: None,
            dirty_eval: false,
            last_tier_true: None,
            dirty: false,
            report: Report {
                state: State::WarmingUp,
                slope_bytes_per_hour: 0.0,
                slope_lower_bytes_per_hour: 0.0,
                confidence: 0.0,
                floor_bytes: 0.0,
                projected_limit_at: None,
                target_bytes: None,
                tier: None,
                points: 0,
                since: now,
                evaluated_at: now,
                detail: "warming up: not enough floors or time yet",
            },
            scratch: Vec::with_capacity(MAX_BUCKETS * MAX_BUCKETS / 2),
            ys: Vec::with_capacity(MAX_BUCKETS + 8),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The limit the floor grows towards (the old-generation limit, or for native memory the
    /// process's memory limit less the heap), bytes.
    pub fn set_limit(&mut self, limit: Option<f64>) {
        self.limit = limit.filter(|l| l.is_finite() && *l > 0.0);
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    fn bucket_width(&self) -> f64 {
        let floor = self.cfg.window_ms / MAX_BUCKETS as f64;
        super::stats::median_gap(&self.obs_times, 3).map_or(floor, |m| m.max(floor))
    }

    /// Record one floor observation at epoch ms `t`. Times must not go backwards (a
    /// backwards step is clamped).
    /// Record a sampled level (heapUsed, sawtooth and all) at epoch ms `t`. It never
    /// makes a leak: it only lets a process whose heap does not grow be called `healthy`
    /// when it has too few major GCs for a trend.
    pub fn observe_level(&mut self, t: f64, bytes: f64) {
        if !bytes.is_finite() {
            return;
        }
        let w = self.cfg.warm_up_ms;
        if t - self.started <= w {
            self.level_first_max = Some(self.level_first_max.map_or(bytes, |m| m.max(bytes)));
        }
        let slice = w / 30.0;
        match self.level_recent.back_mut() {
            Some((start, max)) if t < *start + slice => *max = max.max(bytes),
            _ => self.level_recent.push_back((t, bytes)),
        }
        while self.level_recent.front().is_some_and(|s| s.0 < t - w) {
            self.level_recent.pop_front();
        }
    }

    fn level_recent_max(&self, now: f64) -> Option<f64> {
        let from = now - self.cfg.warm_up_ms;
        self.level_recent
            .iter()
            .filter(|s| s.0 >= from)
            .map(|s| s.1)
            .reduce(f64::max)
    }

    pub fn observe(&mut self, t: f64, bytes: f64) {
        if !bytes.is_finite() {
            return;
        }
        self.close_if_due(t);
        let t = self.obs_times.back().map_or(t, |&last| t.max(last));
        self.obs_times.push_back(t);
        if self.obs_times.len() > 33 {
            self.obs_times.pop_front();
        }
        match self.current.as_mut() {
            Some(b) => {
                b.count += 1;
                if bytes < b.min {
                    b.min = bytes;
                    b.min_t = t;
                }
            }
            None => {
                let width = self.bucket_width();
                self.current = Some(Bucket {
                    start: t,
                    width,
                    min: bytes,
                    min_t: t,
                    count: 1,
                });
            }
        }
    }

    /// Close the open bucket if `now` is past its end. A bucket only exists once an
    /// observation opened it, so time without observations yields no point (missing).
    fn close_if_due(&mut self, now: f64) {
        if let Some(b) = self.current {
            if now >= b.start + b.width {
                self.current = None;
                self.push_point(b.min_t, b.min);
            }
        }
    }

    fn push_point(&mut self, t: f64, v: f64) {
        self.points.push_back((t, v));
        self.dirty = true;
        // Blocks for the confirmed tier.
        let block_ms = self.cfg.day_ms / 24.0;
        match self.block.as_mut() {
            Some((start, min)) if t < *start + block_ms => *min = min.min(v),
            _ => {
                if let Some(done) = self.block.take() {
                    self.blocks.push_back(done);
                    if self.blocks.len() > 48 {
                        self.blocks.pop_front();
                    }
                    self.check_confirmed();
                }
                self.block = Some((t, v));
            }
        }
    }

    /// The lowest floor of the last 24 blocks above that of the 24 before: one check.
    fn check_confirmed(&mut self) {
        if self.blocks.len() < 48 {
            return;
        }
        let prev = self
            .blocks
            .iter()
            .take(24)
            .map(|b| b.1)
            .fold(f64::INFINITY, f64::min);
        let last = self
            .blocks
            .iter()
            .skip(24)
            .map(|b| b.1)
            .fold(f64::INFINITY, f64::min);
        // Above by a margin: the minimum of a day of floors still carries a little floating
        // garbage, and two equal days must not count as growth half of the time.
        if last > prev * (1.0 + CONFIRM_MARGIN) {
            self.confirm_checks += 1;
        } else {
            self.confirm_checks = 0;
        }
    }

    /// Re-evaluate at epoch ms `now` if a bucket closed since the last evaluation. Returns
    /// `Some(previous_state)` when the state changed.
    pub fn evaluate(&mut self, now: f64) -> Option<State> {
        self.close_if_due(now);
        let hold_due = self.report.state == State::Growing
            && self
                .suspected_since
                .or(self.geometric_since)
                .is_some_and(|s| now - s >= self.cfg.hold_ms);
        // With too few floors the quiet rule is re-checked now and then (cheap: no statistics).
        let quiet_due = self.points.len() < MIN_POINTS
            && now - self.started >= 2.0 * self.cfg.warm_up_ms
            && now - self.report.evaluated_at >= self.cfg.warm_up_ms / 30.0;
        if !self.dirty && !hold_due && !quiet_due {
            return None;
        }
        self.dirty_eval = self.dirty;
        self.dirty = false;
        // Keep the window; when floors are sparse keep the last GEOMETRIC_RUN of them for up
        // to four windows.
        let horizon = now - self.cfg.window_ms;
        let far = now - 4.0 * self.cfg.window_ms;
        while self
            .points
            .front()
            .is_some_and(|p| p.0 < far || (p.0 < horizon && self.points.len() > GEOMETRIC_RUN))
            || self.points.len() > MAX_BUCKETS + 4
        {
            self.points.pop_front();
        }
        let before = self.report.state;
        let next = self.compute(now);
        let changed = next.state != before;
        self.report = Report {
            since: if changed { now } else { self.report.since },
            ..next
        };
        changed.then_some(before)
    }

    fn min_slope(&self) -> f64 {
        let by_limit = self
            .limit
            .map_or(0.0, |l| l * self.cfg.min_slope_limit_fraction_per_hour);
        self.cfg.min_slope_bytes_per_hour.max(by_limit)
    }

    /// The geometric tier: the last [`GEOMETRIC_RUN`] floors each ≥ [`GEOMETRIC_STEP`] × the
    /// one before (and 1 MiB more), ≥ [`GEOMETRIC_TOTAL`] × overall. Returns the run's
    /// slope, bytes/h.
    fn geometric(&self) -> Option<f64> {
        let n = self.points.len();
        if n < GEOMETRIC_RUN {
            return None;
        }
        let run: Vec<(f64, f64)> = self
            .points
            .iter()
            .skip(n - GEOMETRIC_RUN)
            .copied()
            .collect();
        let rising = run
            .windows(2)
            .all(|w| w[1].1 >= w[0].1 * GEOMETRIC_STEP && w[1].1 >= w[0].1 + MIB);
        let (first, last) = (run[0], run[GEOMETRIC_RUN - 1]);
        (rising && last.1 >= first.1 * GEOMETRIC_TOTAL && last.0 > first.0)
            .then(|| (last.1 - first.1) / (last.0 - first.0) * HOUR_MS)
    }

    fn compute(&mut self, now: f64) -> Report {
        let n = self.points.len();
        let floor = self.points.back().map_or(0.0, |p| p.1);
        let target = self.limit.map(|l| l * PROJECTION_FRACTION);
        let mut r = Report {
            state: State::WarmingUp,
            slope_bytes_per_hour: 0.0,
            slope_lower_bytes_per_hour: 0.0,
            confidence: 0.0,
            floor_bytes: floor,
            projected_limit_at: None,
            target_bytes: target,
            tier: None,
            points: n,
            since: self.report.since,
            evaluated_at: now,
            detail: "warming up: not enough floors or time yet",
        };
        let age = now - self.started;
        if age < self.cfg.warm_up_ms {
            return r;
        }
        let per_hour = HOUR_MS;
        let eta_ms = |slope_per_hour: f64| -> Option<f64> {
            let t = target?;
            if slope_per_hour <= 0.0 {
                return None;
            }
            Some(((t - floor).max(0.0) / slope_per_hour) * per_hour)
        };
        let geometric = self.geometric();
        match geometric {
            Some(_) => {
                self.geometric_since.get_or_insert(now);
            }
            None => self.geometric_since = None,
        }

        // Window and recent statistics (only with enough points).
        let (mut p, mut slope, mut lower) = (1.0, 0.0, 0.0);
        let (mut rp, mut rslope, mut rlower) = (1.0, 0.0, 0.0);
        let mut suspected = false;
        let mut urgent_now = false;
        if n >= MIN_POINTS {
            let pts: Vec<(f64, f64)> = self.points.iter().copied().collect();
            self.ys.clear();
            self.ys.extend(pts.iter().map(|p| p.1));
            p = mk_test(&self.ys).map_or(1.0, |t| t.p);
            let sen = sen_slope(&pts, Z_99, &mut self.scratch);
            (slope, lower) = sen.map_or((0.0, 0.0), |s| (s.slope * per_hour, s.lower * per_hour));
            let third = n.div_ceil(3).max(3);
            let tail = &pts[n - third..];
            let tail_slope =
                sen_slope(tail, Z_99, &mut self.scratch).map_or(0.0, |s| s.slope * per_hour);
            let head_max = pts[..n - third]
                .iter()
                .map(|p| p.1)
                .fold(f64::NEG_INFINITY, f64::max);
            let tail_max = tail.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let min_slope = self.min_slope();
            suspected = p < P_MAX
                && lower > 0.0
                && slope >= min_slope
                && tail_slope >= 0.6 * slope
                && tail_max > head_max;

            // Urgent: the recent quarter (at least MIN_POINTS buckets).
            let recent_from = now - self.cfg.window_ms / 4.0;
            let k = pts
                .iter()
                .position(|p| p.0 >= recent_from)
                .unwrap_or(n)
                .min(n - MIN_POINTS);
            let recent = &pts[k..];
            self.ys.clear();
            self.ys.extend(recent.iter().map(|p| p.1));
            rp = mk_test(&self.ys).map_or(1.0, |t| t.p);
            let rsen = sen_slope(recent, Z_99, &mut self.scratch);
            (rslope, rlower) =
                rsen.map_or((0.0, 0.0), |s| (s.slope * per_hour, s.lower * per_hour));
            urgent_now = rp < P_MAX
                && rlower > 0.0
                && rslope >= min_slope
                && eta_ms(rslope).is_some_and(|e| e < self.cfg.urgent_horizon_ms);
        }
        if self.dirty_eval {
            self.urgent_count = if urgent_now { self.urgent_count + 1 } else { 0 };
        }
        if suspected {
            self.suspected_since.get_or_insert(now);
        } else {
            self.suspected_since = None;
        }
        let confirmed = self.confirm_checks >= 3;
        if suspected || urgent_now || confirmed || geometric.is_some() {
            self.last_tier_true = Some(now);
        }

        let hold = self.cfg.hold_ms;
        let held = self.suspected_since.is_some_and(|s| now - s >= hold);
        let geo_held = self.geometric_since.is_some_and(|s| now - s >= hold);
        let was_leak = self.report.state == State::Leak;
        let floors_flat = n < 2 || floor <= self.points.front().map_or(0.0, |p| p.1) * QUIET_GROWTH;
        let level_flat = match (self.level_first_max, self.level_recent_max(now)) {
            (Some(first), Some(recent)) => Some(recent <= first * QUIET_GROWTH + QUIET_SLACK),
            _ => None,
        };
        let quiet = n < MIN_POINTS
            && age >= 2.0 * self.cfg.warm_up_ms
            && floors_flat
            && level_flat.unwrap_or(n >= 2);
        let (state, tier, detail) = if self.urgent_count >= 3 {
            (
                State::Leak,
                Some(Tier::Urgent),
                "the floor grows fast enough to reach its limit soon",
            )
        } else if held {
            (
                State::Leak,
                Some(Tier::Suspected),
                "the floor has grown steadily for the whole hold period",
            )
        } else if geo_held {
            (
                State::Leak,
                Some(Tier::Geometric),
                "each major GC leaves a much larger heap than the last, for the whole hold period",
            )
        } else if confirmed {
            (
                State::Leak,
                Some(Tier::Confirmed),
                "the lowest floor of the last day is above the previous day's",
            )
        } else if was_leak && self.last_tier_true.is_some_and(|t| now - t < hold) {
            (
                State::Leak,
                self.report.tier,
                "recent growth stopped; the leak verdict clears after the hold period",
            )
        } else if urgent_now {
            (
                State::Growing,
                Some(Tier::Urgent),
                "fast growth towards the limit, not yet confirmed",
            )
        } else if suspected {
            (
                State::Growing,
                Some(Tier::Suspected),
                "growth consistent with a leak or a still-filling cache",
            )
        } else if geometric.is_some() {
            (
                State::Growing,
                Some(Tier::Geometric),
                "each major GC leaves a much larger heap than the last (a leak or a filling cache)",
            )
        } else if n >= MIN_POINTS {
            (State::Healthy, None, "no sustained growth of the floor")
        } else if quiet {
            (
                State::Healthy,
                None,
                "too few floors (major GCs) for a trend yet, and they are not growing",
            )
        } else {
            return r;
        };
        let use_recent = tier == Some(Tier::Urgent);
        r.state = state;
        r.tier = tier;
        r.detail = detail;
        if tier == Some(Tier::Geometric) {
            r.slope_bytes_per_hour = geometric
                .or(Some(self.report.slope_bytes_per_hour))
                .unwrap_or(0.0);
            r.slope_lower_bytes_per_hour = r.slope_bytes_per_hour;
            // What order alone says: 1 of 3! orders is strictly rising. The size of the steps
            // (≥ 20 % each, ≥ 2× overall) is the stronger evidence but has no noise model here.
            r.confidence = 1.0 - 1.0 / 6.0;
        } else {
            r.slope_bytes_per_hour = if use_recent { rslope } else { slope };
            r.slope_lower_bytes_per_hour = if use_recent { rlower } else { lower };
            r.confidence = if n >= MIN_POINTS {
                1.0 - if use_recent { rp } else { p }
            } else {
                0.0
            };
        }
        if matches!(state, State::Growing | State::Leak) {
            r.projected_limit_at = eta_ms(r.slope_bytes_per_hour).map(|e| now + e);
        }
        r
    }

    /// The recent slope and its lower bound, bytes/h, for pressure's ETA (None when the
    /// recent floors do not grow significantly).
    pub fn eta_to_target(&mut self, now: f64) -> Option<f64> {
        let target = self.limit? * PROJECTION_FRACTION;
        let n = self.points.len();
        if n < MIN_POINTS {
            return None;
        }
        let recent_from = now - self.cfg.window_ms / 4.0;
        let pts: Vec<(f64, f64)> = self.points.iter().copied().collect();
        let k = pts
            .iter()
            .position(|p| p.0 >= recent_from)
            .unwrap_or(n)
            .min(n - MIN_POINTS);
        let s = sen_slope(&pts[k..], Z_99, &mut self.scratch)?;
        if s.lower <= 0.0 {
            return None;
        }
        let floor = pts[n - 1].1;
        Some((target - floor).max(0.0) / s.slope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    fn cfg() -> Config {
        Config::for_interval(10_000.0)
    }

    #[test]
    fn warming_up_until_time_and_points() {
        let mut v = Verdict::new(cfg(), 0.0);
        // Floors every 30 s for 10 min: buckets of 2 min → 5 points, and < 15 min.
        for i in 0..20 {
            let t = i as f64 * 30_000.0;
            v.observe(t, 100e6 + i as f64 * 1e6);
            v.evaluate(t);
        }
        assert_eq!(v.report().state, State::WarmingUp);
    }

    #[test]
    fn missing_buckets_are_not_filled() {
        let mut v = Verdict::new(cfg(), 0.0);
        v.observe(0.0, 1.0);
        v.evaluate(3_600_000.0);
        assert_eq!(
            v.points.len(),
            1,
            "an idle hour makes one point, not thirty"
        );
    }

    fn feed(v: &mut Verdict, floors: &[(f64, f64)], until: f64, step: f64) -> Vec<(f64, State)> {
        let mut changes = Vec::new();
        let mut i = 0;
        let mut t = 0.0;
        while t <= until {
            while i < floors.len() && floors[i].0 <= t {
                v.observe(floors[i].0, floors[i].1);
                i += 1;
            }
            if v.evaluate(t).is_some() {
                changes.push((t, v.report().state));
            }
            t += step;
        }
        changes
    }

    #[test]
    fn sparse_geometric_floors_are_growing_then_a_leak_after_the_hold() {
        // The measured retained-Map run at intervalMs 100 (warm-up 9 s, hold 18 s).
        let mut v = Verdict::new(Config::for_interval(100.0), 0.0);
        v.set_limit(Some(4096.0 * MIB));
        let floors = [
            (1800.0, 10.3e6),
            (8800.0, 34.4e6),
            (19_000.0, 68.6e6),
            (55_400.0, 184.1e6),
        ];
        let changes = feed(&mut v, &floors, 90_000.0, 100.0);
        assert_eq!(
            changes.iter().map(|c| c.1).collect::<Vec<_>>(),
            [State::Growing, State::Leak],
            "{changes:?}"
        );
        // The fourth floor closes its bucket 1.2 s later; the hold is 18 s.
        assert!(changes[1].0 - changes[0].0 >= 18_000.0);
        assert_eq!(v.report().tier, Some(Tier::Geometric));
        assert!(v.report().projected_limit_at.is_some());
    }

    #[test]
    fn few_floors_that_do_not_grow_are_healthy_after_twice_the_warm_up() {
        let mut v = Verdict::new(Config::for_interval(100.0), 0.0);
        v.set_limit(Some(4096.0 * MIB));
        let floors = [(2000.0, 12.0e6), (9000.0, 12.5e6), (15_000.0, 12.2e6)];
        feed(&mut v, &floors, 17_000.0, 100.0);
        assert_eq!(v.report().state, State::WarmingUp, "before 2 × warm-up");
        let floors = [(19_000.0, 12.1e6)];
        feed(&mut v, &floors, 25_000.0, 100.0);
        assert_eq!(v.report().state, State::Healthy);
    }

    #[test]
    fn a_geometric_run_that_stops_within_the_hold_is_not_a_leak() {
        // A cache filling fast at start-up, full before the hold ends.
        let mut v = Verdict::new(Config::for_interval(100.0), 0.0);
        v.set_limit(Some(4096.0 * MIB));
        let floors = [
            (2000.0, 10e6),
            (9000.0, 25e6),
            (15_000.0, 60e6),
            (25_000.0, 62e6),
            (40_000.0, 61e6),
        ];
        let changes = feed(&mut v, &floors, 90_000.0, 100.0);
        assert!(changes.iter().all(|c| c.1 != State::Leak), "{changes:?}");
        assert_eq!(
            changes.first().map(|c| c.1),
            Some(State::Growing),
            "the run was seen"
        );
    }

    #[test]
    fn without_major_gcs_a_flat_heap_is_healthy_and_a_growing_one_is_not() {
        let run = |growth_per_s: f64| {
            let mut v = Verdict::new(Config::for_interval(100.0), 0.0);
            let mut t = 0.0;
            while t <= 30_000.0 {
                // A 10 MiB sawtooth of young-generation garbage on top of the level.
                let saw = (t % 2000.0) / 2000.0 * 10.0 * MIB;
                v.observe_level(t, 20.0 * MIB + saw + growth_per_s * t / 1000.0);
                v.evaluate(t);
                t += 100.0;
            }
            v.report().state
        };
        assert_eq!(run(0.0), State::Healthy);
        assert_eq!(
            run(1.0 * MIB),
            State::WarmingUp,
            "1 MiB/s with no major GC is not called healthy"
        );
    }

    #[test]
    fn one_big_step_in_sparse_floors_is_not_geometric() {
        let mut v = Verdict::new(Config::for_interval(100.0), 0.0);
        let floors = [
            (1000.0, 10e6),
            (8000.0, 11e6),
            (15_000.0, 60e6),
            (30_000.0, 61e6),
            (45_000.0, 60.5e6),
        ];
        feed(&mut v, &floors, 90_000.0, 100.0);
        assert_ne!(v.report().state, State::Leak);
        assert_ne!(v.report().tier, Some(Tier::Geometric));
    }

    #[test]
    fn bucket_width_follows_the_major_gc_rhythm() {
        let mut v = Verdict::new(cfg(), 0.0);
        for i in 0..10 {
            v.observe(i as f64 * 300_000.0, 1.0); // a major GC every 5 min
        }
        assert_eq!(v.bucket_width(), 300_000.0);
    }
}
