//! The listener ledger: one count series per (emitter, event) pair, its growth verdict
//! and the call sites that added its listeners.
//!
//! Runs on the JS thread, at tick time only: the JS auditor counts listeners once per
//! sampling interval and hands the counts over in one batch ([`Ledger::observe`]); the
//! add/remove hot path never reaches Rust. Pairs are named by small integer ids that JS
//! allocates; the ledger holds no reference to any JS object, only the names to report.
//!
//! Invariants: a pair's series holds at most `window_samples` samples; a pair holds at
//! most [`MAX_SITES`] call sites; every time constant is a number of samples, so the
//! verdict scales with the sampling interval.

pub mod verdict;

use std::collections::{HashMap, VecDeque};

use verdict::Sample;

/// Coarse series kept beside the per-reading one: each point is the lowest count of this
/// many readings (a floor that request churn cannot lift). With `windowSamples` points
/// each, at the default 1 s interval they span 10 min and 100 min: a leak of one
/// listener a minute shows there, never in a one-minute window.
pub const COARSE_FACTORS: [usize; 2] = [10, 100];

/// Distinct call sites kept per pair; beyond it the least frequent is dropped.
pub const MAX_SITES: usize = 32;

/// Verdict settings, all in samples or listeners.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    /// The long window: samples kept per pair and judged (≥ 8).
    pub window_samples: usize,
    /// Net growth (listeners) a window must show to count as a leak.
    pub min_growth: u32,
    /// Growth over the first count seen that makes a pair suspicious.
    pub suspect_growth: u32,
    /// Consecutive evaluations with steady growth before a leak is reported.
    pub confirm_samples: u32,
}

impl Config {
    /// Readings without a rise after which a suspect that is not a leak is let go: a
    /// quarter of the window, at least [`verdict::MIN_WINDOW`].
    pub fn quiet_samples(&self) -> usize {
        (self.window_samples / 4).max(verdict::MIN_WINDOW)
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            window_samples: 60,
            min_growth: 5,
            suspect_growth: 10,
            confirm_samples: 2,
        }
    }
}

/// What a pair looks like now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Counted, nothing unusual.
    Watching,
    /// Crossed a threshold, grew across samples, or Node warned: worth call sites.
    Suspect,
    /// Steady net growth, confirmed.
    Leak,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Watching => "watching",
            State::Suspect => "suspect",
            State::Leak => "leak",
        }
    }
}

/// A change of a pair's flags, returned by [`Ledger::observe`] and [`Ledger::mark_warned`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub id: u32,
    /// Capture call sites for later additions to this pair.
    pub suspicious: bool,
    pub leak: bool,
    /// The pair became a leak at this evaluation (report it once).
    pub new_leak: bool,
}

/// One pair as reported.
#[derive(Debug, Clone, PartialEq)]
pub struct PairReport {
    pub id: u32,
    pub emitter: String,
    pub event: String,
    pub state: State,
    pub count: u32,
    /// The lowest count in the window: what the pair held before it grew.
    pub floor: u32,
    /// Listeners per minute: the current trend while it grows; for a leak that stopped
    /// growing, the rate measured when it last grew.
    pub rate_per_minute: f64,
    /// Growth seen at the latest reading.
    pub growing: bool,
    pub warned: bool,
    pub samples: usize,
    pub leak_since_ms: Option<f64>,
    /// Top call sites by sampled additions still attached, most first.
    pub call_sites: Vec<(String, i64)>,
}

/// A series of floors: the minimum of every `factor` readings.
#[derive(Debug)]
struct Coarse {
    factor: usize,
    n: usize,
    min: u32,
    series: VecDeque<Sample>,
}

impl Coarse {
    fn new(factor: usize) -> Self {
        Self {
            factor,
            n: 0,
            min: u32::MAX,
            series: VecDeque::new(),
        }
    }

    fn push(&mut self, t_ms: f64, count: u32, cap: usize) {
        self.min = self.min.min(count);
        self.n += 1;
        if self.n == self.factor {
            if self.series.len() == cap {
                self.series.pop_front();
            }
            self.series.push_back(Sample {
                t_ms,
                count: self.min,
            });
            self.n = 0;
            self.min = u32::MAX;
        }
    }
}

#[derive(Debug)]
struct Pair {
    emitter: String,
    event: String,
    samples: VecDeque<Sample>,
    coarse: [Coarse; 2],
    first: Option<u32>,
    warned: bool,
    warned_count: u32,
    suspicious: bool,
    suspect_floor: u32,
    /// Readings since the count last rose.
    quiet: usize,
    leak: bool,
    leak_floor: u32,
    leak_since_ms: Option<f64>,
    streak: u32,
    growth_rate: f64,
    sites: HashMap<String, i64>,
}

impl Pair {
    fn new(emitter: String, event: String) -> Self {
        Self {
            emitter,
            event,
            samples: VecDeque::new(),
            coarse: COARSE_FACTORS.map(Coarse::new),
            first: None,
            warned: false,
            warned_count: 0,
            suspicious: false,
            suspect_floor: 0,
            quiet: 0,
            leak: false,
            leak_floor: 0,
            leak_since_ms: None,
            streak: 0,
            growth_rate: 0.0,
            sites: HashMap::new(),
        }
    }

    fn floor(&self) -> u32 {
        self.samples.iter().map(|s| s.count).min().unwrap_or(0)
    }

    fn count(&self) -> u32 {
        self.samples
            .back()
            .map(|s| s.count)
            .unwrap_or(self.warned_count)
    }

    fn state(&self) -> State {
        if self.leak {
            State::Leak
        } else if self.suspicious {
            State::Suspect
        } else {
            State::Watching
        }
    }
}

/// Every pair's series, verdict and call sites.
#[derive(Debug)]
pub struct Ledger {
    cfg: Config,
    pairs: HashMap<u32, Pair>,
}

impl Ledger {
    pub fn new(mut cfg: Config) -> Self {
        cfg.window_samples = cfg.window_samples.max(verdict::MIN_WINDOW);
        cfg.confirm_samples = cfg.confirm_samples.max(1);
        Self {
            cfg,
            pairs: HashMap::new(),
        }
    }

    pub fn config(&self) -> Config {
        self.cfg
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Start a series for `id` (replacing any previous one under that id).
    pub fn add_pair(&mut self, id: u32, emitter: impl Into<String>, event: impl Into<String>) {
        self.pairs
            .insert(id, Pair::new(emitter.into(), event.into()));
    }

    /// Drop a pair (its emitter was collected or stopped being tracked).
    pub fn remove_pair(&mut self, id: u32) -> bool {
        self.pairs.remove(&id).is_some()
    }

    /// Rename a pair's emitter (a later `track(emitter, name)`).
    pub fn rename(&mut self, id: u32, emitter: impl Into<String>) {
        if let Some(p) = self.pairs.get_mut(&id) {
            p.emitter = emitter.into();
        }
    }

    /// Record one count per pair, taken at `t_ms`, and judge each pair. Unknown ids are
    /// ignored (JS may have dropped the pair since). Returns the pairs whose flags changed.
    pub fn observe(&mut self, ids: &[u32], counts: &[u32], t_ms: f64) -> Vec<Change> {
        let cfg = self.cfg;
        let mut changes = Vec::new();
        for (&id, &count) in ids.iter().zip(counts) {
            let Some(p) = self.pairs.get_mut(&id) else {
                continue;
            };
            if p.samples.len() == cfg.window_samples {
                p.samples.pop_front();
            }
            let prev = p.samples.back().map(|s| s.count);
            p.samples.push_back(Sample { t_ms, count });
            for c in p.coarse.iter_mut() {
                c.push(t_ms, count, cfg.window_samples);
            }
            p.quiet = if prev.is_some_and(|c| count > c) {
                0
            } else {
                p.quiet + 1
            };
            let first = *p.first.get_or_insert(count);
            let before = (p.suspicious, p.leak);

            p.samples.make_contiguous();
            let w = p.samples.as_slices().0;
            let floor = w.iter().map(|s| s.count).min().unwrap_or(0);
            // growth in the readings, or steady growth of the floors of a coarse series:
            // (rate, floor) of the series that shows it
            let fired = if verdict::recent_growth(w, cfg.min_growth) {
                Some((verdict::rate_per_minute(w), floor))
            } else {
                p.coarse.iter_mut().find_map(|c| {
                    let s = c.series.make_contiguous();
                    verdict::recent_steady(s, cfg.min_growth).then(|| {
                        let f = s.iter().map(|x| x.count).min().unwrap_or(0);
                        (verdict::rate_per_minute(s), f)
                    })
                })
            };
            p.streak = if fired.is_some() { p.streak + 1 } else { 0 };
            if let Some((rate, _)) = fired {
                p.growth_rate = rate;
            }
            let mut new_leak = false;
            if !p.leak && p.streak >= cfg.confirm_samples {
                p.leak = true;
                p.leak_floor = fired.map_or(floor, |(_, f)| f);
                p.leak_since_ms = Some(t_ms);
                new_leak = true;
            } else if p.leak && count < p.leak_floor.saturating_add(cfg.min_growth) {
                // the leaked listeners are gone (removed, or the emitter was reset)
                p.leak = false;
                p.leak_since_ms = None;
            }

            let rose = verdict::rising(w);
            if !p.suspicious
                && (p.leak || p.warned || rose || count >= first.saturating_add(cfg.suspect_growth))
            {
                p.suspicious = true;
                // the level before the growth: suspicion ends when the count is back there
                let n = w.len();
                p.suspect_floor = w[n.saturating_sub(3)..]
                    .iter()
                    .map(|s| s.count)
                    .min()
                    .unwrap_or(0)
                    .min(first);
            } else if p.suspicious
                && !p.leak
                && (count <= p.suspect_floor || p.quiet >= cfg.quiet_samples())
            {
                // back where it was, or no longer growing (fan-out that settled, a warned
                // burst that stopped): nothing more to attribute; growth from here on is
                // measured from the current count
                p.suspicious = false;
                p.warned = false;
                p.first = Some(count);
            }

            if before != (p.suspicious, p.leak) {
                changes.push(Change {
                    id,
                    suspicious: p.suspicious,
                    leak: p.leak,
                    new_leak,
                });
            }
        }
        changes
    }

    /// Node warned about this pair (`MaxListenersExceededWarning` with `count`): a
    /// candidate, not proof. Makes the pair suspicious at once.
    pub fn mark_warned(&mut self, id: u32, count: u32) -> Option<Change> {
        let p = self.pairs.get_mut(&id)?;
        p.warned = true;
        p.warned_count = p.warned_count.max(count);
        if p.suspicious {
            return None;
        }
        p.suspicious = true;
        p.quiet = 0;
        // below the count Node saw: a burst that drains clears it
        let seen = p.samples.iter().map(|s| s.count).min().unwrap_or(0);
        p.suspect_floor = seen.min(count.saturating_sub(1));
        Some(Change {
            id,
            suspicious: true,
            leak: p.leak,
            new_leak: false,
        })
    }

    /// Count `delta` sampled additions (negative: removals) at `location` for `id`.
    pub fn add_site(&mut self, id: u32, location: &str, delta: i64) {
        let Some(p) = self.pairs.get_mut(&id) else {
            return;
        };
        match p.sites.get_mut(location) {
            Some(c) => *c += delta,
            None if delta > 0 => {
                if p.sites.len() >= MAX_SITES {
                    if let Some(k) = p
                        .sites
                        .iter()
                        .min_by_key(|(_, &c)| c)
                        .map(|(k, _)| k.clone())
                    {
                        p.sites.remove(&k);
                    }
                }
                p.sites.insert(location.to_string(), delta);
            }
            None => {}
        }
        p.sites.retain(|_, c| *c > 0);
    }

    /// Forget the call sites of `id` (its listeners were all removed).
    pub fn clear_sites(&mut self, id: u32) {
        if let Some(p) = self.pairs.get_mut(&id) {
            p.sites.clear();
        }
    }

    pub fn report_pair(&self, id: u32, max_sites: usize) -> Option<PairReport> {
        let p = self.pairs.get(&id)?;
        let w: Vec<Sample> = p.samples.iter().copied().collect();
        let mut sites: Vec<(String, i64)> = p.sites.iter().map(|(k, &v)| (k.clone(), v)).collect();
        sites.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        sites.truncate(max_sites);
        Some(PairReport {
            id,
            emitter: p.emitter.clone(),
            event: p.event.clone(),
            state: p.state(),
            count: p.count(),
            floor: p.floor(),
            rate_per_minute: if p.leak || p.streak > 0 {
                p.growth_rate
            } else {
                verdict::rate_per_minute(&w)
            },
            growing: p.streak > 0,
            warned: p.warned,
            samples: w.len(),
            leak_since_ms: p.leak_since_ms,
            call_sites: sites,
        })
    }

    /// Every pair that is a leak or a suspect, leaks first, then by growth rate.
    pub fn report(&self, max_sites: usize) -> Vec<PairReport> {
        let mut out: Vec<PairReport> = self
            .pairs
            .iter()
            .filter(|(_, p)| p.leak || p.suspicious)
            .filter_map(|(&id, _)| self.report_pair(id, max_sites))
            .collect();
        out.sort_by(|a, b| {
            (b.state == State::Leak)
                .cmp(&(a.state == State::Leak))
                .then_with(|| b.rate_per_minute.total_cmp(&a.rate_per_minute))
                .then_with(|| b.count.cmp(&a.count))
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(l: &mut Ledger, id: u32, counts: &[u32]) -> Vec<Change> {
        let mut all = Vec::new();
        for (i, &c) in counts.iter().enumerate() {
            all.extend(l.observe(&[id], &[c], i as f64 * 100.0));
        }
        all
    }

    #[test]
    fn a_steady_leak_is_reported_once_with_its_rate() {
        let mut l = Ledger::new(Config::default());
        l.add_pair(1, "db", "data");
        let counts: Vec<u32> = (0..30).map(|i| i * 3).collect();
        let changes = feed(&mut l, 1, &counts);
        assert_eq!(changes.iter().filter(|c| c.new_leak).count(), 1);
        assert!(changes[0].suspicious, "suspicion comes before the verdict");
        assert!(!changes[0].leak);
        let r = l.report_pair(1, 5).unwrap();
        assert_eq!(r.state, State::Leak);
        assert_eq!(r.count, 87);
        // 3 listeners per 100 ms
        assert!(
            (r.rate_per_minute - 1800.0).abs() < 1e-6,
            "{}",
            r.rate_per_minute
        );
        assert_eq!(l.report(5).len(), 1);
    }

    #[test]
    fn the_leak_is_confirmed_within_a_short_window_of_samples() {
        let mut l = Ledger::new(Config::default());
        l.add_pair(1, "db", "data");
        let mut n = 0;
        for i in 0..100u32 {
            n += 1;
            if l.observe(&[1], &[i], f64::from(i))
                .iter()
                .any(|c| c.new_leak)
            {
                break;
            }
        }
        // 8 samples before a window is judged, 5 rises, 2 confirmations
        assert!(n <= 12, "took {n} samples");
    }

    #[test]
    fn a_slow_leak_shows_in_the_coarse_floors() {
        // one listener a minute at 1 s readings, under request churn of 0–3 in flight
        let mut l = Ledger::new(Config::default());
        l.add_pair(1, "db", "data");
        let mut first_leak = None;
        for i in 0..3600u32 {
            let churn = (i * 7 + i / 3) % 4;
            let ch = l.observe(&[1], &[i / 60 + churn], f64::from(i) * 1000.0);
            if first_leak.is_none() && ch.iter().any(|c| c.new_leak) {
                first_leak = Some(i);
            }
        }
        let at = first_leak.expect("never reported");
        // the floors of 10 readings need some 6 points of growth: about 10 minutes
        assert!((300..=1200).contains(&at), "reported after {at} s");
        let r = l.report_pair(1, 5).unwrap();
        assert_eq!(r.state, State::Leak);
        assert!(
            (r.rate_per_minute - 1.0).abs() < 0.3,
            "{}",
            r.rate_per_minute
        );
    }

    #[test]
    fn churn_around_a_flat_level_never_shows_in_the_coarse_floors() {
        let mut l = Ledger::new(Config::default());
        l.add_pair(1, "db", "data");
        for i in 0..3000u32 {
            let churn = (i * 7 + i / 3) % 4;
            let ch = l.observe(&[1], &[20 + churn], f64::from(i) * 1000.0);
            assert!(ch.iter().all(|c| !c.leak), "false leak at {i}");
        }
    }

    #[test]
    fn fan_out_is_never_a_leak() {
        let mut l = Ledger::new(Config::default());
        l.add_pair(1, "bus", "job");
        let mut c = vec![0, 200];
        c.extend([200; 100]);
        let changes = feed(&mut l, 1, &c);
        assert!(changes.iter().all(|c| !c.leak));
        // a suspect while it jumped, let go once it stayed flat: no stacks for ever after
        assert_eq!(changes.len(), 2);
        assert!(changes[0].suspicious && !changes[1].suspicious);
        assert_eq!(l.report_pair(1, 5).unwrap().state, State::Watching);
        // and the flat level is the new baseline: more flat readings change nothing
        assert!(feed(&mut l, 1, &[200; 20]).is_empty());
    }

    #[test]
    fn a_quiet_period_lets_a_suspect_go_but_not_a_leak() {
        let cfg = Config::default();
        let mut l = Ledger::new(cfg);
        l.add_pair(1, "db", "data");
        let mut c: Vec<u32> = (0..20).collect();
        c.extend([19; 100]);
        feed(&mut l, 1, &c);
        assert_eq!(l.report_pair(1, 5).unwrap().state, State::Leak);
        // a warned pair that stops growing is let go after quiet_samples readings
        l.add_pair(2, "Socket", "close");
        l.observe(&[2], &[11], 0.0);
        l.mark_warned(2, 11);
        let q = cfg.quiet_samples();
        for i in 0..q - 1 {
            assert!(
                l.observe(&[2], &[11], i as f64).is_empty(),
                "let go too early at {i}"
            );
        }
        let ch = l.observe(&[2], &[11], 1e6);
        assert_eq!(ch.len(), 1);
        assert!(!ch[0].suspicious);
    }

    #[test]
    fn suspicion_clears_when_the_count_returns() {
        let mut l = Ledger::new(Config::default());
        l.add_pair(1, "sig", "abort");
        let changes = feed(&mut l, 1, &[0, 0, 4, 9, 12, 3, 0, 0]);
        assert_eq!(changes.len(), 2);
        assert!(changes[0].suspicious);
        assert!(!changes[1].suspicious);
        assert!(l.report(5).is_empty());
    }

    #[test]
    fn a_leak_stays_reported_after_traffic_stops_and_clears_when_removed() {
        let mut l = Ledger::new(Config::default());
        l.add_pair(1, "db", "data");
        let mut c: Vec<u32> = (0..20).collect();
        c.extend([19; 80]);
        feed(&mut l, 1, &c);
        assert_eq!(l.report_pair(1, 5).unwrap().state, State::Leak);
        let r = l.report_pair(1, 5).unwrap();
        assert!(!r.growing);
        // the rate while it grew (1 per 100 ms), not the flat trend of the last readings
        assert!(r.rate_per_minute > 100.0, "{}", r.rate_per_minute);
        let changes = l.observe(&[1], &[0], 1e6);
        assert_eq!(
            changes,
            vec![Change {
                id: 1,
                suspicious: false,
                leak: false,
                new_leak: false
            }]
        );
    }

    #[test]
    fn process_baseline_listeners_do_not_count_as_growth() {
        // process starts with a few listeners of its own: a flat, non-zero series
        let mut l = Ledger::new(Config::default());
        l.add_pair(1, "process", "newListener");
        let changes = feed(&mut l, 1, &[2; 50]);
        assert!(changes.is_empty());
    }

    #[test]
    fn node_warning_makes_a_pair_suspect_not_a_leak() {
        let mut l = Ledger::new(Config::default());
        l.add_pair(7, "Socket", "close");
        let c = l.mark_warned(7, 11).unwrap();
        assert!(c.suspicious && !c.leak);
        assert!(l.mark_warned(7, 11).is_none(), "once per crossing");
        let r = l.report_pair(7, 5).unwrap();
        assert!(r.warned);
        assert_eq!(r.count, 11);
        assert_eq!(r.state, State::Suspect);
    }

    #[test]
    fn call_sites_count_net_additions_and_rank() {
        let mut l = Ledger::new(Config::default());
        l.add_pair(1, "db", "data");
        l.add_site(1, "/srv/a.js:10:5", 3);
        l.add_site(1, "/srv/b.js:2:1", 1);
        l.add_site(1, "/srv/b.js:2:1", 4);
        l.add_site(1, "/srv/a.js:10:5", -3);
        l.add_site(1, "/srv/c.js:1:1", -1);
        let r = l.report_pair(1, 5).unwrap();
        assert_eq!(r.call_sites, vec![("/srv/b.js:2:1".to_string(), 5)]);
        l.clear_sites(1);
        assert!(l.report_pair(1, 5).unwrap().call_sites.is_empty());
    }

    #[test]
    fn call_sites_are_bounded() {
        let mut l = Ledger::new(Config::default());
        l.add_pair(1, "db", "data");
        l.add_site(1, "hot.js:1:1", 100);
        for i in 0..200 {
            l.add_site(1, &format!("f{i}.js:1:1"), 1);
        }
        let r = l.report_pair(1, 100).unwrap();
        assert_eq!(r.call_sites.len(), MAX_SITES);
        assert_eq!(r.call_sites[0], ("hot.js:1:1".to_string(), 100));
    }

    #[test]
    fn series_are_bounded_by_the_window_and_pairs_can_be_removed() {
        let mut l = Ledger::new(Config {
            window_samples: 10,
            ..Config::default()
        });
        l.add_pair(1, "e", "x");
        feed(&mut l, 1, &[1; 100]);
        assert_eq!(l.report_pair(1, 0).unwrap().samples, 10);
        assert!(l.remove_pair(1));
        assert!(l.is_empty());
        assert!(
            l.observe(&[1], &[5], 0.0).is_empty(),
            "unknown ids are ignored"
        );
    }

    #[test]
    fn report_ranks_leaks_first() {
        let mut l = Ledger::new(Config::default());
        l.add_pair(1, "a", "x");
        l.add_pair(2, "b", "y");
        l.mark_warned(1, 11);
        feed(&mut l, 2, &(0..20).collect::<Vec<_>>());
        let r = l.report(5);
        assert_eq!(r.iter().map(|p| p.id).collect::<Vec<_>>(), vec![2, 1]);
        l.rename(2, "db");
        assert_eq!(l.report(5)[0].emitter, "db");
    }
}
