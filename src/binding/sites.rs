//! Allocation sites for JS: `new NativeSites(options)`; `addFrames` for newly interned
//! frames, `push` for one read profile (typed arrays: no object walking), `report` shaped
//! as plain objects, and `export` (a `.heapprofile` or pprof Buffer, or a file) as an
//! `AsyncTask` that encodes and writes on a libuv worker.
//!
//! With the `leakguard_sampler` cfg (build.rs compiled `sampler.cc`), `samplerAbi`,
//! `samplerStart`, `samplerStop` and `NativeSites#readNative` drive V8's sampling heap
//! profiler directly: a read walks V8's tree in C++, frames are interned here, and no
//! JS object is made. Without it, `samplerAbi()` is `null` and JS uses the inspector.

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
    /// Frames interned by `readNative` (script id, line, column, name, url).
    keys: std::collections::HashMap<Vec<u8>, u32>,
}

/// The versions `sampler.cc` was compiled against (also its C struct: `repr(C)`).
#[napi(object)]
#[repr(C)]
#[derive(Default)]
pub struct SamplerAbi {
    pub node_major: i32,
    pub node_minor: i32,
    pub v8_major: i32,
    pub v8_minor: i32,
    pub node_module_version: i32,
}

#[cfg(leakguard_sampler)]
mod ffi {
    use std::ffi::{c_char, c_void};

    pub use super::SamplerAbi as Abi;

    pub type NodeCb = extern "C" fn(
        ctx: *mut c_void,
        node_id: u32,
        parent: i32,
        script_id: i32,
        line: i32,
        column: i32,
        name: *const c_char,
        name_len: u32,
        url: *const c_char,
        url_len: u32,
        self_bytes: f64,
    );
    pub type SampleCb = extern "C" fn(ctx: *mut c_void, node_id: u32, bytes: f64, sample_id: f64);

    extern "C" {
        pub fn leakguard_sampler_abi(out: *mut Abi);
        pub fn leakguard_sampler_start(interval: u64, depth: i32) -> i32;
        pub fn leakguard_sampler_stop() -> i32;
        pub fn leakguard_sampler_read(ctx: *mut c_void, on_node: NodeCb, on_sample: SampleCb) -> i64;
    }
}

/// The ABI the direct sampler was compiled for, or `null` when it was not built.
#[napi]
pub fn sampler_abi() -> Option<SamplerAbi> {
    #[cfg(leakguard_sampler)]
    {
        let mut a = SamplerAbi::default();
        // SAFETY: writes five ints into `a` (the same repr(C) layout); touches no V8 symbol.
        unsafe { ffi::leakguard_sampler_abi(&mut a) };
        Some(a)
    }
    #[cfg(not(leakguard_sampler))]
    None
}

/// Starts V8's sampler on this thread's isolate without the inspector's forced GC:
/// 1 started (or already ours), 0 someone else runs it, -1 no isolate, -2 not built.
/// Only call when `samplerAbi()` equals the running Node's versions.
#[napi]
pub fn sampler_start(interval: f64, depth: u32) -> Result<i32> {
    if !(interval.is_finite() && interval >= 1.0) || depth == 0 {
        return Err(invalid("samplerStart(interval ≥ 1, depth ≥ 1)"));
    }
    #[cfg(leakguard_sampler)]
    {
        // SAFETY: called on a JS thread (napi), which has an entered isolate.
        Ok(unsafe { ffi::leakguard_sampler_start(interval as u64, depth.min(i32::MAX as u32) as i32) })
    }
    #[cfg(not(leakguard_sampler))]
    Ok(-2)
}

/// Stops the sampler when this thread started it; `true` when it did.
#[napi]
pub fn sampler_stop() -> bool {
    #[cfg(leakguard_sampler)]
    {
        // SAFETY: as sampler_start.
        unsafe { ffi::leakguard_sampler_stop() == 1 }
    }
    #[cfg(not(leakguard_sampler))]
    false
}

#[cfg(leakguard_sampler)]
struct ReadCtx<'a> {
    keys: &'a mut std::collections::HashMap<Vec<u8>, u32>,
    next_frame: u32,
    new_frames: Vec<Frame>,
    cwd: &'a str,
    nodes: Vec<Node>,
    samples: Vec<SampleRec>,
    key: Vec<u8>,
}

#[cfg(leakguard_sampler)]
extern "C" fn on_node(
    ctx: *mut std::ffi::c_void,
    node_id: u32,
    parent: i32,
    script_id: i32,
    line: i32,
    column: i32,
    name: *const std::ffi::c_char,
    name_len: u32,
    url: *const std::ffi::c_char,
    url_len: u32,
    self_bytes: f64,
) {
    // SAFETY: ctx is the &mut ReadCtx readNative passed; name/url are valid for their
    // lengths for the duration of this call (sampler.cc's buffers).
    let c = unsafe { &mut *(ctx as *mut ReadCtx) };
    let bytes = |p: *const std::ffi::c_char, n: u32| -> &[u8] {
        if n == 0 || p.is_null() {
            &[]
        } else {
            unsafe { std::slice::from_raw_parts(p as *const u8, n as usize) }
        }
    };
    let (name, url) = (bytes(name, name_len), bytes(url, url_len));
    let script_id = script_id.max(0) as u32;
    let (line, column) = (line.max(0) as u32, column.max(0) as u32);
    c.key.clear();
    c.key.extend_from_slice(&script_id.to_le_bytes());
    c.key.extend_from_slice(&line.to_le_bytes());
    c.key.extend_from_slice(&column.to_le_bytes());
    c.key.extend_from_slice(&name_len.to_le_bytes());
    c.key.extend_from_slice(name);
    c.key.extend_from_slice(url);
    let frame = match c.keys.get(c.key.as_slice()) {
        Some(&f) => f,
        None => {
            let f = c.next_frame;
            c.next_frame += 1;
            c.keys.insert(c.key.clone(), f);
            c.new_frames.push(Frame::new(
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(url).into_owned(),
                script_id,
                line,
                column,
                c.cwd,
            ));
            f
        }
    };
    c.nodes.push(Node { id: node_id, parent, frame, self_bytes });
}

#[cfg(leakguard_sampler)]
extern "C" fn on_sample(ctx: *mut std::ffi::c_void, node_id: u32, bytes: f64, sample_id: f64) {
    // SAFETY: as on_node.
    let c = unsafe { &mut *(ctx as *mut ReadCtx) };
    c.samples.push(SampleRec { size: bytes, node_id, ordinal: sample_id });
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
            keys: std::collections::HashMap::new(),
        })
    }

    /// One read straight from V8's sampler (started by `samplerStart`): `false` when the
    /// profiler is no longer running (someone else stopped it), nothing pushed then.
    /// `clean`: the first read since a major GC (see `sites::Sites::push`).
    #[napi]
    pub fn read_native(&mut self, now: f64, clean: Option<bool>) -> Result<bool> {
        #[cfg(leakguard_sampler)]
        {
            let cwd = self.core.config().cwd.clone();
            let mut ctx = ReadCtx {
                keys: &mut self.keys,
                next_frame: self.core.frames().len() as u32,
                new_frames: Vec::new(),
                cwd: &cwd,
                nodes: Vec::with_capacity(256),
                samples: Vec::with_capacity(1024),
                key: Vec::with_capacity(128),
            };
            // SAFETY: on the JS thread; the callbacks get &mut ctx, alive for the call.
            let n = unsafe {
                ffi::leakguard_sampler_read(&mut ctx as *mut ReadCtx as *mut std::ffi::c_void, on_node, on_sample)
            };
            if n <= 0 {
                return Ok(false);
            }
            let ReadCtx { new_frames, nodes, samples, .. } = ctx;
            self.core.add_frames(new_frames);
            self.core.push(now, nodes, samples, clean.unwrap_or(false));
            Ok(true)
        }
        #[cfg(not(leakguard_sampler))]
        {
            let _ = (now, clean);
            Err(invalid("readNative(): this build has no direct sampler (samplerAbi() is null)"))
        }
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
    /// samples as `[size, nodeId, ordinal, …]`; `clean`: the first read since a major GC,
    /// or one that forced a full GC (the inspector's).
    #[napi]
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        now: f64,
        ids: Uint32ArraySlice,
        parents: Int32ArraySlice,
        frames: Uint32ArraySlice,
        self_bytes: Float64ArraySlice,
        samples: Float64ArraySlice,
        clean: Option<bool>,
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
        self.core.push(now, nodes, samples, clean.unwrap_or(false));
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

    /// A copy of the last read, to export as `'heapprofile'` or `'pprof'` with
    /// [`SitesExport::run`]. Not an `AsyncTask` of this object's: napi-rs keeps a method's
    /// `&self` borrowed until the task it returns settles, so every read (`&mut self`) in the
    /// meantime threw — and the sampler took that for its profiler stopped by someone else.
    #[napi]
    pub fn export_job(&self, format: String, path: Option<String>) -> Result<SitesExport> {
        let pprof = match format.as_str() {
            "heapprofile" => false,
            "pprof" => true,
            _ => return Err(invalid("format must be 'heapprofile' or 'pprof'")),
        };
        Ok(SitesExport {
            job: Some(Export {
                read: self.core.last().clone(),
                frames: self.core.frames().to_vec(),
                interval: self.interval,
                pprof,
                path: path.map(PathBuf::from),
            }),
        })
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

/// One export of a read, run once: a Buffer, or written to `path` (0600, atomically)
/// resolving to the path. Owns its copy, so the sites stay free for the next read.
#[napi]
pub struct SitesExport {
    job: Option<Export>,
}

#[napi]
impl SitesExport {
    #[napi(ts_return_type = "Promise<Buffer | string>")]
    pub fn run(&mut self) -> Result<AsyncTask<Export>> {
        self.job
            .take()
            .map(AsyncTask::new)
            .ok_or_else(|| invalid("run(): this export already ran"))
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
