//! The growth verdict over one (emitter, event) count series: plain statistics on a
//! slice of samples, no state. Runs on the JS thread at tick time (a few µs per pair).
//!
//! A leak is *steady net growth across samples*: split a window into four segments;
//! the segment minima must rise strictly (the floor climbs, so a burst that drains does
//! not count), the last count must be a new high, the window must hold at least
//! [`MIN_RISES`] rising steps (one step of fan-out at start-up, or a staged start-up of
//! two or three, does not count) and the net growth must reach the configured minimum.

/// One reading: milliseconds (any monotonic origin) and the listener count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t_ms: f64,
    pub count: u32,
}

/// Fewest samples a window must hold to be judged: four segments of two.
pub const MIN_WINDOW: usize = 8;

/// Fewest rising steps in a window for growth to count as steady. Four keeps a
/// start-up that adds listeners in up to three stages (plugins, pools) out.
pub const MIN_RISES: usize = 4;

/// Does `w` show steady net growth of at least `min_growth` listeners?
pub fn steady_growth(w: &[Sample], min_growth: u32) -> bool {
    let n = w.len();
    if n < MIN_WINDOW {
        return false;
    }
    let seg = |k: usize| &w[k * n / 4..(k + 1) * n / 4];
    let mins: Vec<u32> = (0..4)
        .map(|k| seg(k).iter().map(|s| s.count).min().unwrap_or(0))
        .collect();
    if !mins.windows(2).all(|p| p[0] < p[1]) {
        return false;
    }
    let last = w[n - 1].count;
    let earlier_max = w[..n - 1].iter().map(|s| s.count).max().unwrap_or(0);
    if last < earlier_max {
        return false;
    }
    let rises = w.windows(2).filter(|p| p[1].count > p[0].count).count();
    rises >= MIN_RISES && last.saturating_sub(mins[0]) >= min_growth.max(1)
}

/// Rising steps, with no fall, that make a short burst count as growth across samples.
pub const BURST_RISES: usize = 3;

/// A burst of growth across samples in the last [`MIN_WINDOW`] samples: at least
/// [`BURST_RISES`] rising steps, no falling one, ending at the window's high, with the net
/// growth reaching the minimum. Catches a leak driven hard for a few intervals (a few
/// hundred requests in half a second at `intervalMs: 100`), which the quarter-minima
/// test needs six or more intervals to see. Fan-out added in one or two intervals is not a
/// burst; a start-up that adds listeners in three separate intervals is.
pub fn burst_growth(w: &[Sample], min_growth: u32) -> bool {
    if w.len() < MIN_WINDOW {
        return false;
    }
    let w = &w[w.len() - MIN_WINDOW..];
    let mut rises = 0;
    for p in w.windows(2) {
        if p[1].count < p[0].count {
            return false;
        }
        if p[1].count > p[0].count {
            rises += 1;
        }
    }
    let last = w[w.len() - 1].count;
    rises >= BURST_RISES && last.saturating_sub(w[0].count) >= min_growth.max(1)
}

/// Growth over any recent window: a burst in the last 8 samples, or steady growth over
/// the last 8, 16, 32, … samples or all of `w`. Short windows catch a leak that started after a long flat stretch (which would
/// hold the older segment minima of a long window level); long ones catch slow leaks.
pub fn recent_growth(w: &[Sample], min_growth: u32) -> bool {
    burst_growth(w, min_growth) || recent_steady(w, min_growth)
}

/// Steady growth over the last 8, 16, 32, … samples or all of `w`.
pub fn recent_steady(w: &[Sample], min_growth: u32) -> bool {
    let mut k = MIN_WINDOW;
    while k < w.len() {
        if steady_growth(&w[w.len() - k..], min_growth) {
            return true;
        }
        k *= 2;
    }
    steady_growth(w, min_growth)
}

/// Two consecutive rises at the end of the series: "grew across samples".
pub fn rising(w: &[Sample]) -> bool {
    let n = w.len();
    n >= 3 && w[n - 3].count < w[n - 2].count && w[n - 2].count < w[n - 1].count
}

/// Theil–Sen slope in listeners per minute (the median of pairwise slopes; robust to a
/// single step). 0 for fewer than two samples or no elapsed time.
pub fn rate_per_minute(w: &[Sample]) -> f64 {
    let mut slopes = Vec::with_capacity(w.len() * w.len().saturating_sub(1) / 2);
    for i in 0..w.len() {
        for j in i + 1..w.len() {
            let dt = w[j].t_ms - w[i].t_ms;
            if dt > 0.0 {
                slopes.push((f64::from(w[j].count) - f64::from(w[i].count)) / dt);
            }
        }
    }
    if slopes.is_empty() {
        return 0.0;
    }
    slopes.sort_by(|a, b| a.total_cmp(b));
    let m = slopes.len() / 2;
    let per_ms = if slopes.len() % 2 == 1 {
        slopes[m]
    } else {
        (slopes[m - 1] + slopes[m]) / 2.0
    };
    per_ms * 60_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(counts: &[u32]) -> Vec<Sample> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &c)| Sample {
                t_ms: i as f64 * 1000.0,
                count: c,
            })
            .collect()
    }

    #[test]
    fn a_steady_leak_is_growth() {
        let w = series(&(0..16).map(|i| i * 2).collect::<Vec<_>>());
        assert!(steady_growth(&w, 5));
        assert!((rate_per_minute(&w) - 120.0).abs() < 1e-9);
    }

    #[test]
    fn fan_out_at_start_up_then_flat_is_not_growth() {
        let mut c = vec![0, 50];
        c.extend([50; 14]);
        assert!(!steady_growth(&series(&c), 5));
        // staged start-up: three steps, then flat, is not steady growth…
        let staged = [0, 10, 20, 30, 30, 30, 30, 30, 30, 30, 30, 30];
        assert!(!steady_growth(&series(&staged), 5));
        // …and in two steps not a burst either
        let two = [0, 0, 0, 0, 100, 200, 200, 200, 200, 200];
        assert!(!(8..=two.len()).any(|n| recent_growth(&series(&two[..n]), 5)));
    }

    #[test]
    fn a_burst_that_drains_is_not_growth() {
        let c = [0, 3, 8, 12, 12, 6, 1, 0, 0, 0, 0, 0];
        assert!(!steady_growth(&series(&c), 5));
    }

    #[test]
    fn per_request_add_and_remove_under_load_is_not_growth() {
        // concurrency fluctuates around 5
        let c = [4, 6, 5, 3, 7, 5, 4, 6, 5, 5, 6, 4, 5, 7, 3, 5];
        assert!(!steady_growth(&series(&c), 5));
    }

    #[test]
    fn small_growth_below_the_minimum_is_not_growth() {
        let c = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4];
        assert!(!steady_growth(&series(&c), 5));
        assert!(steady_growth(&series(&c), 3));
    }

    #[test]
    fn growth_must_still_be_going_on() {
        // grew, then dropped below the previous high at the end
        let c = [0, 2, 4, 6, 8, 10, 12, 9];
        assert!(!steady_growth(&series(&c), 5));
    }

    #[test]
    fn too_few_samples_are_not_judged() {
        assert!(!steady_growth(&series(&[0, 10, 20, 30, 40, 50, 60]), 5));
    }

    #[test]
    fn slow_leak_with_rises_between_flat_samples_is_growth() {
        // one listener every third sample
        let c: Vec<u32> = (0..24).map(|i| i / 3).collect();
        assert!(steady_growth(&series(&c), 5));
        let r = rate_per_minute(&series(&c));
        assert!((r - 20.0).abs() < 1.0, "{r}");
    }

    #[test]
    fn growth_that_starts_after_a_long_flat_stretch_is_found() {
        let mut c = vec![3u32; 50];
        c.extend((1..=6).map(|i| 3 + i * 40));
        assert!(
            !steady_growth(&series(&c), 5),
            "the long window alone misses it"
        );
        assert!(recent_growth(&series(&c), 5));
        // flat again afterwards: no longer growing
        c.extend([243; 8]);
        assert!(!recent_growth(&series(&c), 5));
    }

    #[test]
    fn recent_growth_keeps_fan_out_and_bursts_out() {
        let mut c = vec![0u32; 30];
        c.push(200);
        c.extend([200; 30]);
        assert!(!(8..c.len()).any(|n| recent_growth(&series(&c[..n]), 5)));
        // a burst that drains at once is growth for one reading at most: never confirmed
        let mut b = vec![0u32; 30];
        b.extend([5, 9, 12, 6, 2, 0, 0, 0, 0, 0]);
        let g: Vec<bool> = (8..=b.len())
            .map(|n| recent_growth(&series(&b[..n]), 5))
            .collect();
        assert!(!g.windows(2).any(|p| p[0] && p[1]), "{g:?}");
        let mut staged = vec![0u32; 20];
        staged.extend([10, 20]);
        staged.extend([20; 30]);
        assert!(!(8..staged.len()).any(|n| recent_growth(&series(&staged[..n]), 5)));
    }

    #[test]
    fn a_hard_burst_over_a_few_samples_is_growth() {
        // 200 leaked listeners over four intervals after a quiet start
        let mut c = vec![0u32; 20];
        c.extend([50, 100, 150, 200]);
        assert!(
            !steady_growth(&series(&c[c.len() - 8..]), 5),
            "too short for the quarters"
        );
        assert!(burst_growth(&series(&c), 5));
        // it stays a burst while the window holds it, and stops once it scrolled out
        c.extend([200; 3]);
        assert!(recent_growth(&series(&c), 5));
        c.extend([200; 5]);
        assert!(!recent_growth(&series(&c), 5));
        // any fall inside the window is churn, not a burst
        let churn = [0, 10, 20, 15, 30, 40, 50, 60];
        assert!(!burst_growth(&series(&churn), 5));
        // below the minimum growth it is noise
        assert!(!burst_growth(&series(&[0, 0, 0, 0, 0, 1, 2, 3]), 5));
    }

    #[test]
    fn rising_needs_two_consecutive_rises() {
        assert!(rising(&series(&[1, 2, 3])));
        assert!(!rising(&series(&[1, 2, 2])));
        assert!(!rising(&series(&[3, 2])));
    }

    #[test]
    fn rate_is_zero_without_elapsed_time() {
        assert_eq!(rate_per_minute(&[]), 0.0);
        assert_eq!(rate_per_minute(&series(&[5])), 0.0);
    }
}
