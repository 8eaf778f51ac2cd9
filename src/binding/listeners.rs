//! The listener ledger for JS: `new ListenerLedger(options)` and its batch methods,
//! called by `lib/listeners.js` at tick time (never from the add/remove hot path).

use napi_derive::napi;

use crate::listeners::{Change, Config, Ledger, PairReport};

#[napi(object)]
pub struct LedgerOptions {
    pub window_samples: u32,
    pub min_growth: u32,
    pub suspect_growth: u32,
    pub confirm_samples: u32,
}

#[napi(object)]
pub struct PairChange {
    pub id: u32,
    pub suspicious: bool,
    pub leak: bool,
    pub new_leak: bool,
}

#[napi(object)]
pub struct CallSite {
    pub location: String,
    pub count: f64,
}

#[napi(object)]
pub struct PairReportJs {
    pub id: u32,
    pub emitter: String,
    pub event: String,
    pub state: String,
    pub count: u32,
    pub floor: u32,
    pub rate_per_minute: f64,
    pub growing: bool,
    pub warned: bool,
    pub samples: u32,
    pub leak_since_ms: Option<f64>,
    pub call_sites: Vec<CallSite>,
}

impl From<Change> for PairChange {
    fn from(c: Change) -> Self {
        Self {
            id: c.id,
            suspicious: c.suspicious,
            leak: c.leak,
            new_leak: c.new_leak,
        }
    }
}

impl From<PairReport> for PairReportJs {
    fn from(r: PairReport) -> Self {
        Self {
            id: r.id,
            emitter: r.emitter,
            event: r.event,
            state: r.state.as_str().to_string(),
            count: r.count,
            floor: r.floor,
            rate_per_minute: r.rate_per_minute,
            growing: r.growing,
            warned: r.warned,
            samples: r.samples as u32,
            leak_since_ms: r.leak_since_ms,
            call_sites: r
                .call_sites
                .into_iter()
                .map(|(location, count)| CallSite {
                    location,
                    count: count as f64,
                })
                .collect(),
        }
    }
}

#[napi]
pub struct ListenerLedger {
    inner: Ledger,
}

#[napi]
impl ListenerLedger {
    #[napi(constructor)]
    pub fn new(o: LedgerOptions) -> Self {
        let cfg = Config {
            window_samples: o.window_samples as usize,
            min_growth: o.min_growth,
            suspect_growth: o.suspect_growth,
            confirm_samples: o.confirm_samples,
        };
        Self {
            inner: Ledger::new(cfg),
        }
    }

    #[napi]
    pub fn add_pair(&mut self, id: u32, emitter: String, event: String) {
        self.inner.add_pair(id, emitter, event);
    }

    #[napi]
    pub fn remove_pair(&mut self, id: u32) -> bool {
        self.inner.remove_pair(id)
    }

    #[napi]
    pub fn rename(&mut self, id: u32, emitter: String) {
        self.inner.rename(id, emitter);
    }

    /// One count per pair, all taken at `now_ms`; returns the pairs whose flags changed.
    #[napi]
    pub fn observe(&mut self, ids: Vec<u32>, counts: Vec<u32>, now_ms: f64) -> Vec<PairChange> {
        self.inner
            .observe(&ids, &counts, now_ms)
            .into_iter()
            .map(Into::into)
            .collect()
    }

    #[napi]
    pub fn mark_warned(&mut self, id: u32, count: u32) -> Option<PairChange> {
        self.inner.mark_warned(id, count).map(Into::into)
    }

    /// Sampled call sites: `deltas[i]` additions (negative: removals) at `locations[i]`.
    #[napi]
    pub fn add_sites(&mut self, ids: Vec<u32>, locations: Vec<String>, deltas: Vec<i32>) {
        for ((id, loc), d) in ids.iter().zip(&locations).zip(&deltas) {
            self.inner.add_site(*id, loc, i64::from(*d));
        }
    }

    #[napi]
    pub fn clear_sites(&mut self, id: u32) {
        self.inner.clear_sites(id);
    }

    #[napi]
    pub fn report_pair(&self, id: u32, max_sites: u32) -> Option<PairReportJs> {
        self.inner
            .report_pair(id, max_sites as usize)
            .map(Into::into)
    }

    #[napi]
    pub fn report(&self, max_sites: u32) -> Vec<PairReportJs> {
        self.inner
            .report(max_sites as usize)
            .into_iter()
            .map(Into::into)
            .collect()
    }

    #[napi(getter)]
    pub fn size(&self) -> u32 {
        self.inner.len() as u32
    }
}
