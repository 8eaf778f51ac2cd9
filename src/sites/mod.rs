//! Allocation sites from V8's sampling heap profiler: a bounded history of live bytes per
//! site and each site's growth, judged with the verdict's own statistics.
//!
//! The JS thread reads the profile (`HeapProfiler.getSamplingProfile`) and hands over a
//! compact form: frames once (interned by JS, ids dense from 0), then per read the
//! profile's nodes in pre-order (`parent` index before child) with their frame ids and
//! self bytes, and its samples. Runs on the JS thread inside the binding's calls; a push is
//! O(nodes × depth + sites), a report O(sites × points²) with points ≤ [`MAX_POINTS`].
//!
//! Invariants:
//! - a **site** is a stack aggregated to `depth` frames, leaf first, ending at the first
//!   frame of the application's own code (callers above it do not split a site); the profile's
//!   synthetic root and V8's pseudo-frames (`(root)`, `(program)`, …) never count as frames;
//! - every read closes at most one point per site per bucket; a known site absent from a
//!   read has 0 live bytes in it — growth is never made up from gaps;
//! - a bucket is `max(window / MAX_POINTS, median interval between clean reads)` wide, as
//!   the heap verdict's floors follow the major GCs' rhythm. A **clean** read is the first
//!   after a major GC (or one that forced it, the inspector's): the profile's samples of
//!   objects that died but were not yet collected — a bounded cache's evicted entries
//!   promoted to old space, a router's per-request garbage — are gone from it. A site's
//!   point is its minimum over the bucket's clean reads, else over all its reads: between
//!   major GCs such garbage rises for seconds on end, and a short window read it as growth;
//! - at most `max_sites` sites are kept (the smallest, not growing, are evicted) and at
//!   most [`MAX_POINTS`] + 4 points per site: memory is bounded whatever the code does;
//! - growth uses [`crate::monitor::stats`] and the verdict's thresholds
//!   ([`verdict::P_MAX`], [`verdict::Z_99`], [`verdict::MIN_POINTS`], the plateau test).

pub mod export;
pub mod pprof;

use std::collections::{HashMap, VecDeque};

use crate::monitor::stats::{mk_test, sen_slope};
use crate::monitor::verdict::{self, MAX_BUCKETS};

/// Points per site within the window (the verdict's bucket cap).
pub const MAX_POINTS: usize = MAX_BUCKETS;
/// A growing site rises by at least this many sampling intervals over its window.
pub const MIN_RISE_SAMPLES: f64 = 8.0;
/// Sites kept by default.
pub const DEFAULT_MAX_SITES: usize = 1000;
/// A site's slope must reach this, bytes/h, to be called growing (at the default 2 h
/// window; the rise in [`Config::min_rise_bytes`] decides at short windows).
pub const MIN_SITE_SLOPE: f64 = 1024.0 * 1024.0;
/// The plateau test's factor: the last third's slope ≥ this × the window's (as the verdict).
pub const PLATEAU: f64 = 0.6;
const HOUR_MS: f64 = 3_600_000.0;

/// One stack frame as the profile names it. `line`/`column` are 1-based (0: unknown).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    pub function_name: String,
    /// The script as V8 names it (path or URL).
    pub url: String,
    /// `url` for people: `file://` stripped, relative to the cwd when under it.
    pub file: String,
    pub script_id: u32,
    pub line: u32,
    pub column: u32,
}

impl Frame {
    pub fn new(
        function_name: String,
        url: String,
        script_id: u32,
        line: u32,
        column: u32,
        cwd: &str,
    ) -> Self {
        let file = display_file(&url, cwd);
        Self {
            function_name,
            url,
            file,
            script_id,
            line,
            column,
        }
    }

    /// V8's pseudo-frames: the profile's root and `(program)`, `(garbage collector)`, …
    pub fn is_pseudo(&self) -> bool {
        self.url.is_empty()
            && self.function_name.starts_with('(')
            && self.function_name.ends_with(')')
    }

    /// Application code: a script of its own, not under node_modules, not Node's.
    pub fn is_app(&self) -> bool {
        !self.url.is_empty()
            && !self.url.starts_with("node:")
            && !self.url.contains("/node_modules/")
            && !self.url.contains("\\node_modules\\")
            && !self.is_pseudo()
    }

    fn is_dependency(&self) -> bool {
        self.url.contains("/node_modules/") || self.url.contains("\\node_modules\\")
    }

    /// `fn (file:line:column)`, or `(anonymous)` for a nameless function.
    pub fn short(&self) -> String {
        let f = if self.function_name.is_empty() {
            "(anonymous)"
        } else {
            &self.function_name
        };
        if self.file.is_empty() {
            f.to_string()
        } else {
            format!("{f} {}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// `file:///a/b%20c.js` → `/a/b c.js`; then relative to `cwd` when under it.
pub fn display_file(url: &str, cwd: &str) -> String {
    let path = match url.strip_prefix("file://") {
        Some(p) => percent_decode(p),
        None => url.to_string(),
    };
    let cwd = cwd.trim_end_matches(['/', '\\']);
    if !cwd.is_empty() {
        if let Some(rest) = path.strip_prefix(cwd) {
            if let Some(rel) = rest.strip_prefix('/').or_else(|| rest.strip_prefix('\\')) {
                return rel.to_string();
            }
        }
    }
    path
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One node of a read profile: pre-order, `parent` < own index (−1 for the root).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    pub id: u32,
    pub parent: i32,
    pub frame: u32,
    pub self_bytes: f64,
}

/// One sample of a read profile (`size` is V8's size × count, bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRec {
    pub size: f64,
    pub node_id: u32,
    pub ordinal: f64,
}

/// The last profile read, kept for export.
#[derive(Debug, Clone, Default)]
pub struct Read {
    pub at: f64,
    pub nodes: Vec<Node>,
    pub samples: Vec<SampleRec>,
}

impl Read {
    pub fn total_bytes(&self) -> f64 {
        self.nodes.iter().map(|n| n.self_bytes).sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Frames per site, leaf first.
    pub depth: usize,
    /// The verdict's window, ms.
    pub window_ms: f64,
    pub max_sites: usize,
    /// The process's cwd, for display paths.
    pub cwd: String,
    /// A growing site must rise at least this much over its points, bytes: a few sampling
    /// intervals, so that Poisson noise in a site of a few samples never reads as growth.
    pub min_rise_bytes: f64,
}

#[derive(Debug)]
struct Site {
    frames: Vec<u32>,
    /// Closed points (time, bytes) within the window, oldest first.
    points: VecDeque<(f64, f64)>,
    /// The open bucket's point so far: time, bytes, from a clean read.
    open: Option<(f64, f64, bool)>,
    last_bytes: f64,
    last_seen: f64,
}

/// A site's growth over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub slope_bytes_per_hour: f64,
    pub slope_lower_bytes_per_hour: f64,
    /// 1 − p of the Mann–Kendall test (0 below [`verdict::MIN_POINTS`] points).
    pub confidence: f64,
    pub growing: bool,
    pub points: usize,
}

/// One site in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteReport {
    pub frames: Vec<u32>,
    /// Index into `frames` of the frame that names the site.
    pub name_frame: usize,
    pub live_bytes: f64,
    pub growth: Growth,
    /// growth / the heap floor's growth, in [0, 1]; 0 when the heap floor does not grow.
    pub share: f64,
}

#[derive(Debug)]
pub struct Sites {
    cfg: Config,
    frames: Vec<Frame>,
    sites: HashMap<Vec<u32>, Site>,
    bucket_start: Option<f64>,
    /// The open bucket's width, ms (fixed when it opened).
    bucket_width: f64,
    /// Times of the last clean reads (at most [`CLEAN_TIMES`]), for the bucket width.
    clean_times: VecDeque<f64>,
    last: Read,
    reads: u64,
    scratch: Vec<f64>,
}

/// Clean reads whose gaps set the bucket width (the verdict keeps 33 major GCs' times).
const CLEAN_TIMES: usize = 33;

impl Sites {
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg: Config {
                depth: cfg.depth.clamp(1, 64),
                max_sites: cfg.max_sites.max(1),
                ..cfg
            },
            frames: Vec::new(),
            sites: HashMap::new(),
            bucket_start: None,
            bucket_width: 0.0,
            clean_times: VecDeque::with_capacity(CLEAN_TIMES + 1),
            last: Read::default(),
            reads: 0,
            scratch: Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Append interned frames; ids are their positions. Returns the count.
    pub fn add_frames(&mut self, frames: impl IntoIterator<Item = Frame>) -> usize {
        self.frames.extend(frames);
        self.frames.len()
    }

    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    pub fn frame(&self, id: u32) -> Option<&Frame> {
        self.frames.get(id as usize)
    }

    pub fn last(&self) -> &Read {
        &self.last
    }

    pub fn reads(&self) -> u64 {
        self.reads
    }

    pub fn site_count(&self) -> usize {
        self.sites.len()
    }

    /// The stack of `node`: leaf first, up to `depth` real frames or the first app frame.
    fn stack_of(&self, nodes: &[Node], mut i: usize, out: &mut Vec<u32>) {
        out.clear();
        loop {
            let n = nodes[i];
            if let Some(f) = self.frames.get(n.frame as usize) {
                if !f.is_pseudo() {
                    out.push(n.frame);
                    // The site ends at the application's own frame: who called it (router,
                    // framework, event loop) does not make another site.
                    if out.len() == self.cfg.depth || f.is_app() {
                        return;
                    }
                }
            }
            if n.parent < 0 || n.parent as usize >= i {
                return;
            }
            i = n.parent as usize;
        }
    }

    /// The width of a bucket opened now: the window's share, or the median interval
    /// between clean reads when major GCs are rarer than that (once three intervals are known).
    fn next_bucket_width(&self) -> f64 {
        let floor = self.cfg.window_ms / MAX_POINTS as f64;
        crate::monitor::stats::median_gap(&self.clean_times, 4).map_or(floor, |m| m.max(floor))
    }

    /// Record one read at epoch ms `now`. Nodes must be in pre-order with frame ids
    /// already added; a node whose parent is not before it ends its stack there. `clean`:
    /// the first read since a major GC ended, or one that forced a full GC itself.
    pub fn push(&mut self, now: f64, nodes: Vec<Node>, samples: Vec<SampleRec>, clean: bool) {
        let mut live: HashMap<Vec<u32>, f64> = HashMap::new();
        let mut stack = Vec::with_capacity(self.cfg.depth);
        for (i, n) in nodes.iter().enumerate() {
            if n.self_bytes <= 0.0 || !n.self_bytes.is_finite() {
                continue;
            }
            self.stack_of(&nodes, i, &mut stack);
            if stack.is_empty() {
                continue;
            }
            *live.entry(stack.clone()).or_insert(0.0) += n.self_bytes;
        }
        let close = match self.bucket_start {
            Some(s) if now >= s + self.bucket_width => {
                self.bucket_start = Some(now);
                self.bucket_width = self.next_bucket_width();
                true
            }
            Some(_) => false,
            None => {
                self.bucket_start = Some(now);
                self.bucket_width = self.next_bucket_width();
                false
            }
        };
        if clean {
            self.clean_times.push_back(now);
            if self.clean_times.len() > CLEAN_TIMES {
                self.clean_times.pop_front();
            }
        }
        let horizon = now - self.cfg.window_ms;
        for site in self.sites.values_mut() {
            if close {
                if let Some((t, b, _)) = site.open.take() {
                    site.points.push_back((t, b));
                }
            }
            while site.points.front().is_some_and(|p| p.0 < horizon)
                || site.points.len() > MAX_POINTS + 4
            {
                site.points.pop_front();
            }
            site.last_bytes = 0.0;
        }
        for (frames, bytes) in live {
            let site = self.sites.entry(frames.clone()).or_insert_with(|| Site {
                frames,
                points: VecDeque::with_capacity(8),
                open: None,
                last_bytes: 0.0,
                last_seen: now,
            });
            site.last_bytes = bytes;
            site.last_seen = now;
        }
        for site in self.sites.values_mut() {
            let b = site.last_bytes;
            site.open = Some(match site.open {
                // A clean read's bytes outrank any read's that may hold dead objects.
                Some((t, m, was_clean))
                    if (was_clean && !clean) || (was_clean == clean && m <= b) =>
                {
                    (t, m, was_clean)
                }
                _ => (now, b, clean),
            });
        }
        self.evict(now);
        self.last = Read {
            at: now,
            nodes,
            samples,
        };
        self.reads += 1;
    }

    /// Drop sites unseen for a window, then the smallest non-growing ones over the cap.
    fn evict(&mut self, now: f64) {
        let w = self.cfg.window_ms;
        self.sites.retain(|_, s| now - s.last_seen <= w);
        let cap = self.cfg.max_sites;
        if self.sites.len() <= cap {
            return;
        }
        let mut ranked: Vec<(Vec<u32>, bool, f64)> = Vec::with_capacity(self.sites.len());
        let keys: Vec<Vec<u32>> = self.sites.keys().cloned().collect();
        for k in keys {
            let g = self.growth_of(&k);
            let s = &self.sites[&k];
            ranked.push((k, g.growing, s.last_bytes));
        }
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.total_cmp(&a.2)));
        for (k, _, _) in ranked.into_iter().skip(cap) {
            self.sites.remove(&k);
        }
    }

    fn growth_of(&mut self, key: &[u32]) -> Growth {
        let Some(site) = self.sites.get(key) else {
            return Growth {
                slope_bytes_per_hour: 0.0,
                slope_lower_bytes_per_hour: 0.0,
                confidence: 0.0,
                growing: false,
                points: 0,
            };
        };
        let pts: Vec<(f64, f64)> = site
            .points
            .iter()
            .copied()
            .chain(site.open.map(|(t, b, _)| (t, b)))
            .collect();
        growth(&pts, self.cfg.min_rise_bytes, &mut self.scratch)
    }

    /// Every site, growing first (by growth), then by live bytes; at most `limit`.
    /// `heap_slope` is the heap floor's slope, bytes/h (the verdict's).
    pub fn report(&mut self, heap_slope: f64, limit: usize) -> Vec<SiteReport> {
        let keys: Vec<Vec<u32>> = self.sites.keys().cloned().collect();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let g = self.growth_of(&k);
            let s = &self.sites[&k];
            let share = if g.growing && heap_slope > 0.0 {
                (g.slope_bytes_per_hour / heap_slope).clamp(0.0, 1.0)
            } else {
                0.0
            };
            out.push(SiteReport {
                name_frame: self.name_frame(&s.frames),
                frames: s.frames.clone(),
                live_bytes: s.last_bytes,
                growth: g,
                share,
            });
        }
        out.sort_by(|a, b| {
            b.growth
                .growing
                .cmp(&a.growth.growing)
                .then_with(|| {
                    if a.growth.growing {
                        b.growth
                            .slope_bytes_per_hour
                            .total_cmp(&a.growth.slope_bytes_per_hour)
                    } else {
                        std::cmp::Ordering::Equal
                    }
                })
                .then_with(|| b.live_bytes.total_cmp(&a.live_bytes))
                .then_with(|| a.frames.cmp(&b.frames))
        });
        out.truncate(limit);
        out
    }

    /// The frame that names a site: the first (leaf first) in the application's own code,
    /// else the first in a dependency, else the leaf.
    pub fn name_frame(&self, frames: &[u32]) -> usize {
        let get = |i: usize| self.frames.get(frames[i] as usize);
        (0..frames.len())
            .find(|&i| get(i).is_some_and(Frame::is_app))
            .or_else(|| (0..frames.len()).find(|&i| get(i).is_some_and(Frame::is_dependency)))
            .unwrap_or(0)
    }

    /// Bytes held by the site history, the frame table and the last read (estimate).
    pub fn bytes(&self) -> usize {
        let frames: usize = self
            .frames
            .iter()
            .map(|f| {
                std::mem::size_of::<Frame>()
                    + f.function_name.capacity()
                    + f.url.capacity()
                    + f.file.capacity()
            })
            .sum();
        let sites: usize = self
            .sites
            .values()
            .map(|s| {
                std::mem::size_of::<Site>()
                    + 2 * s.frames.capacity() * 4
                    + s.points.capacity() * 16
                    + 48
            })
            .sum();
        frames
            + sites
            + self.last.nodes.capacity() * std::mem::size_of::<Node>()
            + self.last.samples.capacity() * std::mem::size_of::<SampleRec>()
    }
}

/// Growth of one series of (epoch ms, bytes) points: the verdict's suspected tier
/// applied to a site (Mann–Kendall p < 1 %, Sen 99 % lower bound > 0, slope ≥
/// [`MIN_SITE_SLOPE`], the last third still growing at ≥ [`PLATEAU`] × the slope with a new
/// maximum), and a rise over the points' span of at least `min_rise` bytes.
pub fn growth(pts: &[(f64, f64)], min_rise: f64, scratch: &mut Vec<f64>) -> Growth {
    let n = pts.len();
    let none = Growth {
        slope_bytes_per_hour: 0.0,
        slope_lower_bytes_per_hour: 0.0,
        confidence: 0.0,
        growing: false,
        points: n,
    };
    if n < verdict::MIN_POINTS {
        return none;
    }
    let ph: Vec<(f64, f64)> = pts.iter().map(|&(t, b)| (t / HOUR_MS, b)).collect();
    let Some(s) = sen_slope(&ph, verdict::Z_99, scratch) else {
        return none;
    };
    let ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
    let Some(mk) = mk_test(&ys) else { return none };
    let third = &ph[n - (n / 3).max(3).min(n)..];
    let tail = sen_slope(third, verdict::Z_99, scratch).map_or(0.0, |t| t.slope);
    let prior_max = ys[..n - third.len()]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let new_max = third.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max) > prior_max;
    let span_h = ph[n - 1].0 - ph[0].0;
    let growing = mk.p < verdict::P_MAX
        && s.slope * span_h >= min_rise
        && s.lower > 0.0
        && s.slope >= MIN_SITE_SLOPE
        && tail >= PLATEAU * s.slope
        && new_max;
    Growth {
        slope_bytes_per_hour: s.slope,
        slope_lower_bytes_per_hour: s.lower,
        confidence: 1.0 - mk.p,
        growing,
        points: n,
    }
}

#[cfg(test)]
mod tests;
