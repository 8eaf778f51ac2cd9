//! Allocation sites for JS: `new NativeSites(options)`; `addFrames` for newly interned
//! frames, `push` for one read profile (typed arrays: no object walking), `report` shaped
//! as plain objects, and `export` (a `.heapprofile` or pprof Buffer, or a file) as an
//! `AsyncTask` that encodes and writes on a libuv worker.

use std::path::PathBuf;

use napi::bindgen_prelude::*;
use napi_derive::napi;

use super::{invalid, to_napi};
use crate::sites::{
    export, pprof, Config, Frame, Node, Read, SampleRec, Sites, DEFAULT_MAX_SITES, MIN_RISE_SAMPLES,
};

#[napi(object)]
pub struct SitesOptions {
    pub depth: u32,
    pub window_ms: f64,
    pub max_sites: Option<u32>,
    pub cwd: String,
    /// Bytes, for pprof's period.
    pub sampling_interval: f64,
}

#[napi(object)]
pub struct SiteFrame {
    pub function_name: String,
    pub file: String,
    pub line: u32,
    pub column: u32,
}

#[napi(object)]
pub struct SiteOut {
    pub frames: Vec<SiteFrame>,
    /// `fn file:line:column` of the naming frame.
    pub name: String,
    pub live_bytes: f64,
    pub growth_bytes_per_hour: f64,
    pub growth_lower_bytes_per_hour: f64,
    pub confidence: f64,
    pub growing: bool,
    pub share: f64,
    pub points: u32,
}

#[napi]
pub struct NativeSites {
    core: Sites,
    interval: f64,
}

#[napi]
impl NativeSites {
    #[napi(constructor)]
    pub fn new(o: SitesOptions) -> Result<Self> {
        if !(o.window_ms.is_finite() && o.window_ms > 0.0) || o.depth == 0 {
            return Err(invalid("windowMs and depth must be positive"));
        }
        Ok(Self {
            core: Sites::new(Config {
                depth: o.depth as usize,
                window_ms: o.window_ms,
                max_sites: o.max_sites.map_or(DEFAULT_MAX_SITES, |m| m as usize),
                cwd: o.cwd,
                min_rise_bytes: MIN_RISE_SAMPLES * o.sampling_interval,
            }),
            interval: o.sampling_interval,
        })
    }

    /// Append frames (1-based line and column, 0 unknown); returns the frame count.
    #[napi]
    pub fn add_frames(
        &mut self,
        names: Vec<String>,
        urls: Vec<String>,
        script_ids: Uint32ArraySlice,
        lines: Uint32ArraySlice,
        columns: Uint32ArraySlice,
    ) -> Result<u32> {
        let n = names.len();
        if urls.len() != n || script_ids.len() != n || lines.len() != n || columns.len() != n {
            return Err(invalid("addFrames() takes arrays of one length"));
        }
        let cwd = self.core.config().cwd.clone();
        let frames = names
            .into_iter()
            .zip(urls)
            .enumerate()
            .map(|(i, (name, url))| {
                Frame::new(name, url, script_ids[i], lines[i], columns[i], &cwd)
            });
        Ok(self.core.add_frames(frames) as u32)
    }

    /// One read: nodes in pre-order (ids, parent indices, frame ids, self bytes) and the
    /// samples as `[size, nodeId, ordinal, …]`.
    #[napi]
    pub fn push(
        &mut self,
        now: f64,
        ids: Uint32ArraySlice,
        parents: Int32ArraySlice,
        frames: Uint32ArraySlice,
        self_bytes: Float64ArraySlice,
        samples: Float64ArraySlice,
    ) -> Result<()> {
        let n = ids.len();
        if parents.len() != n || frames.len() != n || self_bytes.len() != n {
            return Err(invalid("push() takes node arrays of one length"));
        }
        let known = self.core.frames().len() as u32;
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                id: ids[i],
                parent: parents[i],
                frame: if frames[i] < known {
                    frames[i]
                } else {
                    u32::MAX
                },
                self_bytes: self_bytes[i],
            })
            .collect();
        let samples: Vec<SampleRec> = samples
            .chunks_exact(3)
            .map(|c| SampleRec {
                size: c[0],
                node_id: c[1] as u32,
                ordinal: c[2],
            })
            .collect();
        self.core.push(now, nodes, samples);
        Ok(())
    }

    /// Sites, growing first; `heapSlope` is the heap floor's slope, bytes/h.
    #[napi]
    pub fn report(&mut self, heap_slope: f64, limit: u32) -> Vec<SiteOut> {
        let rows = self.core.report(heap_slope, limit as usize);
        rows.into_iter()
            .map(|r| {
                let frame = |id: u32| self.core.frame(id);
                SiteOut {
                    name: r
                        .frames
                        .get(r.name_frame)
                        .and_then(|&id| frame(id))
                        .map_or_else(String::new, Frame::short),
                    frames: r
                        .frames
                        .iter()
                        .filter_map(|&id| frame(id))
                        .map(|f| SiteFrame {
                            function_name: f.function_name.clone(),
                            file: f.file.clone(),
                            line: f.line,
                            column: f.column,
                        })
                        .collect(),
                    live_bytes: r.live_bytes,
                    growth_bytes_per_hour: r.growth.slope_bytes_per_hour,
                    growth_lower_bytes_per_hour: r.growth.slope_lower_bytes_per_hour,
                    confidence: r.growth.confidence,
                    growing: r.growth.growing,
                    share: r.share,
                    points: r.growth.points as u32,
                }
            })
            .collect()
    }

    /// The last read as `'heapprofile'` or `'pprof'`: a Buffer, or written to `path`
    /// (0600, atomically) resolving to the path.
    #[napi(ts_return_type = "Promise<Buffer | string>")]
    pub fn export(&self, format: String, path: Option<String>) -> Result<AsyncTask<Export>> {
        let pprof = match format.as_str() {
            "heapprofile" => false,
            "pprof" => true,
            _ => return Err(invalid("format must be 'heapprofile' or 'pprof'")),
        };
        Ok(AsyncTask::new(Export {
            read: self.core.last().clone(),
            frames: self.core.frames().to_vec(),
            interval: self.interval,
            pprof,
            path: path.map(PathBuf::from),
        }))
    }

    /// Live bytes of the last read (the sum of its nodes' self sizes).
    #[napi]
    pub fn last_total_bytes(&self) -> f64 {
        self.core.last().total_bytes()
    }

    /// Samples in the last read.
    #[napi]
    pub fn last_samples(&self) -> u32 {
        self.core.last().samples.len() as u32
    }

    #[napi]
    pub fn site_count(&self) -> u32 {
        self.core.site_count() as u32
    }

    #[napi]
    pub fn frame_count(&self) -> u32 {
        self.core.frames().len() as u32
    }

    /// Bytes the site history, frames and last read hold.
    #[napi]
    pub fn bytes(&self) -> f64 {
        self.core.bytes() as f64
    }
}

pub struct Export {
    read: Read,
    frames: Vec<Frame>,
    interval: f64,
    pprof: bool,
    path: Option<PathBuf>,
}

impl Task for Export {
    type Output = Either<Vec<u8>, String>;
    type JsValue = Either<Buffer, String>;

    fn compute(&mut self) -> Result<Self::Output> {
        let bytes = if self.pprof {
            pprof::encode(&self.read, &self.frames, self.interval)
        } else {
            export::heapprofile(&self.read, &self.frames)
        };
        match &self.path {
            Some(p) => {
                export::write(p, &bytes).map_err(to_napi)?;
                Ok(Either::B(p.to_string_lossy().into_owned()))
            }
            None => Ok(Either::A(bytes)),
        }
    }

    fn resolve(&mut self, _env: Env, out: Self::Output) -> Result<Self::JsValue> {
        Ok(match out {
            Either::A(b) => Either::A(b.into()),
            Either::B(s) => Either::B(s),
        })
    }
}
