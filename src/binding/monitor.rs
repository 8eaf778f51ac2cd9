//! The monitor for JS: `new NativeMonitor(options, now)`; `push(sample)` and `gc(…)` from
//! the sampler and the GC observer (typed arrays: no object walking per sample); `beat()`
//! for the watchdog; reports shaped as plain objects. Owns the watchdog and log threads.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::{invalid, to_napi};
use crate::log::{self, Log};
use crate::monitor::pressure::{reason, GcTotals, Level};
use crate::monitor::verdict::Report;
use crate::monitor::{changed, Config, Monitor, Sample, FIELDS, N};
use crate::watchdog::{current_tid, Watchdog};

#[napi(object)]
pub struct MonitorOptions {
    pub interval_ms: f64,
    pub warm_up_ms: Option<f64>,
    pub window_ms: Option<f64>,
    pub hold_ms: Option<f64>,
    pub heap_fraction: Option<f64>,
    pub gc_fraction: Option<f64>,
    pub major_gc_per_second: Option<f64>,
    /// With `beat_period_ms`, starts the watchdog.
    pub stall_threshold_ms: Option<f64>,
    pub beat_period_ms: Option<f64>,
    pub log_file: Option<String>,
    pub log_max_bytes: Option<f64>,
    pub log_files: Option<u32>,
}

#[napi(object)]
pub struct LeakReport {
    pub state: String,
    pub slope_bytes_per_hour: f64,
    pub slope_lower_bytes_per_hour: f64,
    pub confidence: f64,
    pub floor_bytes: f64,
    pub projected_limit_at: Option<f64>,
    pub target_bytes: Option<f64>,
    pub tier: Option<String>,
    pub points: u32,
    pub since: f64,
    pub evaluated_at: f64,
    pub detail: String,
    pub source: Option<String>,
}

#[napi(object)]
pub struct PressureReading {
    pub level: String,
    pub reasons: Vec<String>,
    pub since: f64,
    pub at: f64,
    pub old_generation_used_bytes: f64,
    pub old_generation_limit_bytes: f64,
    pub young_generation_reserve_bytes: f64,
    pub heap_fraction: f64,
    pub marking_duty: f64,
    pub major_gc_per_second: f64,
    pub gc_pause_fraction: f64,
    pub elu: f64,
    pub projected_limit_at: Option<f64>,
}

#[napi(object)]
pub struct StallRecord {
    pub started_at: f64,
    pub duration_ms: f64,
    pub observed: bool,
    pub rss: Option<f64>,
    pub cpu_ms: Option<f64>,
}

/// The JS names of a sample's figures, in the layout `push` takes and `samples` returns.
#[napi]
pub fn sample_fields() -> Vec<&'static str> {
    FIELDS.to_vec()
}

#[napi]
pub struct NativeMonitor {
    core: Monitor,
    watchdog: Option<Watchdog>,
    log: Option<Log>,
}

fn report(r: &Report, source: Option<&str>) -> LeakReport {
    LeakReport {
        state: r.state.as_str().into(),
        slope_bytes_per_hour: r.slope_bytes_per_hour,
        slope_lower_bytes_per_hour: r.slope_lower_bytes_per_hour,
        confidence: r.confidence,
        floor_bytes: r.floor_bytes,
        projected_limit_at: r.projected_limit_at,
        target_bytes: r.target_bytes,
        tier: r.tier.map(|t| t.as_str().into()),
        points: r.points as u32,
        since: r.since,
        evaluated_at: r.evaluated_at,
        detail: r.detail.into(),
        source: source.map(Into::into),
    }
}

fn positive(v: Option<f64>, name: &str) -> Result<Option<f64>> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => {
            Err(invalid(format!("{name} must be a positive number")))
        }
        v => Ok(v),
    }
}

#[napi]
impl NativeMonitor {
    #[napi(constructor)]
    pub fn new(o: MonitorOptions, now: f64) -> Result<Self> {
        let mut cfg =
            Config::for_interval(positive(Some(o.interval_ms), "intervalMs")?.unwrap_or(1.0));
        let v = &mut cfg.verdict;
        v.warm_up_ms = positive(o.warm_up_ms, "warmUpMs")?.unwrap_or(v.warm_up_ms);
        v.window_ms = positive(o.window_ms, "windowMs")?.unwrap_or(v.window_ms);
        v.hold_ms = positive(o.hold_ms, "holdMs")?.unwrap_or(v.hold_ms);
        let p = &mut cfg.pressure;
        p.heap_fraction = positive(o.heap_fraction, "heapFraction")?.unwrap_or(p.heap_fraction);
        p.gc_fraction = positive(o.gc_fraction, "gcFraction")?.unwrap_or(p.gc_fraction);
        p.major_per_second =
            positive(o.major_gc_per_second, "majorGcPerSecond")?.unwrap_or(p.major_per_second);
        let log = match o.log_file {
            Some(path) => {
                let mut c = log::Config::new(path);
                c.max_bytes = positive(o.log_max_bytes, "logFile.maxBytes")?
                    .map_or(c.max_bytes, |b| b as u64);
                c.files = o.log_files.unwrap_or(c.files);
                Some(Log::open(c).map_err(to_napi)?)
            }
            None => None,
        };
        let watchdog = match (
            positive(o.stall_threshold_ms, "stallThresholdMs")?,
            positive(o.beat_period_ms, "beatPeriodMs")?,
        ) {
            (Some(t), Some(p)) => Some(
                Watchdog::start(
                    p,
                    t,
                    current_tid(),
                    log.as_ref().map(|l| l.sender().clone()),
                )
                .map_err(to_napi)?,
            ),
            _ => None,
        };
        Ok(Self {
            core: Monitor::new(cfg, now),
            watchdog,
            log,
        })
    }

    /// Store a sample (laid out as `sampleFields()`); returns the `changed` bits
    /// (1 heap verdict, 2 native verdict, 4 pressure level).
    #[napi]
    pub fn push(&mut self, sample: Float64ArraySlice) -> Result<u32> {
        let s: &[f64] = &sample;
        if s.len() != N {
            return Err(invalid(format!(
                "a sample has {N} figures, got {}",
                s.len()
            )));
        }
        let mut arr = [0.0; N];
        arr.copy_from_slice(s);
        let sample = Sample(arr);
        let out = self.core.push(sample);
        if let Some(l) = &self.log {
            l.sender().sample(&sample);
            self.log_changes(out);
        }
        Ok(out)
    }

    /// A GC observer batch: cumulative totals and post-major floors `[t0, bytes0, t1, …]`.
    #[napi]
    pub fn gc(
        &mut self,
        now: f64,
        majors: f64,
        marking_ms: f64,
        pause_ms: f64,
        floors: Float64ArraySlice,
    ) -> u32 {
        let f: &[f64] = &floors;
        let pairs: Vec<(f64, f64)> = f.chunks_exact(2).map(|c| (c[0], c[1])).collect();
        let out = self.core.gc(
            now,
            GcTotals {
                majors,
                marking_ms,
                pause_ms,
            },
            &pairs,
        );
        if self.log.is_some() {
            self.log_changes(out);
        }
        out
    }

    fn log_changes(&self, out: u32) {
        let Some(l) = &self.log else { return };
        let num = |v: f64| {
            let mut s = String::new();
            log::push_num(&mut s, v);
            s
        };
        let opt = |v: Option<f64>| v.map_or("null".to_string(), num);
        let verdict = |kind: &str, r: &Report| {
            l.sender().line(format!(
                "{{\"type\":\"verdict\",\"series\":\"{kind}\",\"time\":{},\"state\":\"{}\",\"tier\":{},\"slopeBytesPerHour\":{},\"confidence\":{},\"floorBytes\":{},\"projectedLimitAt\":{},\"detail\":{}}}",
                num(r.evaluated_at),
                r.state.as_str(),
                r.tier.map_or("null".to_string(), |t| format!("\"{}\"", t.as_str())),
                num(r.slope_bytes_per_hour),
                num(r.confidence),
                num(r.floor_bytes),
                opt(r.projected_limit_at),
                serde_json::Value::from(r.detail)
            ))
        };
        if out & changed::HEAP != 0 {
            verdict("heap", self.core.heap_report());
        }
        if out & changed::NATIVE != 0 {
            verdict("native", &self.core.native_report().0);
        }
        if out & changed::PRESSURE != 0 {
            let p = self.core.pressure();
            l.sender().line(format!(
                "{{\"type\":\"pressure\",\"time\":{},\"level\":\"{}\",\"reasons\":[{}],\"heapFraction\":{},\"markingDuty\":{},\"majorGcPerSecond\":{},\"projectedLimitAt\":{}}}",
                num(p.at),
                p.level.as_str(),
                reasons(p.reasons).iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(","),
                num(p.heap_fraction),
                num(p.marking_duty),
                num(p.major_per_second),
                opt(p.projected_limit_at)
            ));
        }
    }

    /// The JS thread is alive; returns the stall this beat ends, if any.
    #[napi]
    pub fn beat(&self) -> Option<StallRecord> {
        let s = self.watchdog.as_ref()?.beat()?;
        if let Some(l) = &self.log {
            let mut line = String::from("{\"type\":\"stall\",\"startedAt\":");
            log::push_num(&mut line, s.started_at);
            line.push_str(",\"durationMs\":");
            log::push_num(&mut line, s.duration_ms);
            line.push_str(",\"observed\":");
            line.push_str(if s.observed { "true" } else { "false" });
            line.push_str(",\"rss\":");
            log::push_num(&mut line, s.rss_bytes.unwrap_or(f64::NAN));
            line.push_str(",\"cpuMs\":");
            log::push_num(&mut line, s.cpu_ms.unwrap_or(f64::NAN));
            line.push('}');
            l.sender().line(line);
        }
        Some(StallRecord {
            started_at: s.started_at,
            duration_ms: s.duration_ms,
            observed: s.observed,
            rss: s.rss_bytes,
            cpu_ms: s.cpu_ms,
        })
    }

    #[napi]
    pub fn heap_report(&self) -> LeakReport {
        report(self.core.heap_report(), None)
    }

    #[napi]
    pub fn native_report(&self) -> LeakReport {
        let (r, src) = self.core.native_report();
        report(&r, Some(src.as_str()))
    }

    /// The pressure reading, or null while the level is `none`.
    #[napi]
    pub fn pressure(&self) -> Option<PressureReading> {
        let p = self.core.pressure();
        (p.level != Level::None).then(|| PressureReading {
            level: p.level.as_str().into(),
            reasons: reasons(p.reasons),
            since: p.since,
            at: p.at,
            old_generation_used_bytes: p.floor_bytes,
            old_generation_limit_bytes: p.old_gen_limit_bytes,
            young_generation_reserve_bytes: p.young_reserve_bytes,
            heap_fraction: p.heap_fraction,
            marking_duty: p.marking_duty,
            major_gc_per_second: p.major_per_second,
            gc_pause_fraction: p.gc_pause_fraction,
            elu: p.elu,
            projected_limit_at: p.projected_limit_at,
        })
    }

    /// Every stored sample, oldest first, flattened (`sampleFields().length` per sample).
    #[napi]
    pub fn samples(&self) -> Float64Array {
        let ring = self.core.ring();
        let mut out = Vec::with_capacity(ring.len() * N);
        for s in ring.iter() {
            out.extend_from_slice(&s.0);
        }
        Float64Array::new(out)
    }

    /// Bytes held by the sample ring.
    #[napi]
    pub fn ring_bytes(&self) -> f64 {
        self.core.ring().bytes() as f64
    }

    /// Append one JSON object line to the log (no-op without a log file).
    #[napi]
    pub fn log_line(&self, json: String) {
        if let Some(l) = &self.log {
            l.sender().line(json);
        }
    }

    /// Stop the watchdog and flush and close the log. Idempotent.
    #[napi]
    pub fn stop(&mut self) {
        if let Some(w) = self.watchdog.take() {
            w.stop();
        }
        self.log.take();
    }
}

fn reasons(bits: u32) -> Vec<String> {
    reason::NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}
