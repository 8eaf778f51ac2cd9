//! Uploads for JS: `uploadPlan(path)` (the files of a capture), `uploadStart(options)` →
//! `UploadJob` (poll `outcome` / `progress`, `cancel()`), and `uploadQueue()`. The work runs
//! on the core's `leakguard-upload` thread; nothing here blocks or waits.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use std::time::Duration;

use super::{invalid, to_napi};
use crate::upload::{self, plan, FileSpec, Request, Target};

#[napi(object)]
pub struct PlannedFile {
    pub role: String,
    pub path: String,
    pub name: String,
    pub bytes: f64,
    pub content_type: String,
}

/// The files of the capture `path` belongs to: snapshot, profile, manifest last.
#[napi]
pub fn upload_plan(path: String) -> Result<Vec<PlannedFile>> {
    let files = plan::plan(std::path::Path::new(&path)).map_err(to_napi)?;
    Ok(files
        .into_iter()
        .map(|f| PlannedFile {
            role: f.role.into(),
            path: f.path.display().to_string(),
            name: f.name,
            bytes: f.bytes as f64,
            content_type: f.content_type.into(),
        })
        .collect())
}

#[napi(object)]
pub struct UploadFile {
    pub role: String,
    pub path: String,
    pub key: String,
    pub url: Option<String>,
    pub content_type: String,
}

#[napi(object)]
pub struct UploadStartOptions {
    /// `'s3'` or `'presigned'`.
    pub target: String,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub files: Vec<UploadFile>,
    /// A JSON object merged into the manifest's `upload` record and the outcome.
    pub record_json: String,
    pub delete_local: bool,
    pub retries: u32,
    pub backoff_ms: f64,
    pub max_backoff_ms: f64,
    pub deadline_ms: f64,
    pub part_size: f64,
}

fn ms(v: f64) -> Duration {
    Duration::from_millis(v.max(0.0) as u64)
}

#[napi]
pub fn upload_start(o: UploadStartOptions) -> Result<UploadJob> {
    let target = match o.target.as_str() {
        "s3" => Target::S3 {
            bucket: o
                .bucket
                .ok_or_else(|| invalid("an S3 upload needs a bucket"))?,
            endpoint: o.endpoint,
            region: o.region,
            access_key_id: o.access_key_id,
            secret_access_key: o.secret_access_key,
            session_token: o.session_token,
        },
        "presigned" => Target::Presigned,
        _ => return Err(invalid("target must be 's3' or 'presigned'")),
    };
    let record = match serde_json::from_str(&o.record_json) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(invalid("recordJson must be a JSON object")),
    };
    let req = Request {
        target,
        files: o
            .files
            .into_iter()
            .map(|f| FileSpec {
                role: f.role,
                path: f.path.into(),
                key: f.key,
                url: f.url,
                content_type: f.content_type,
            })
            .collect(),
        record,
        delete_local: o.delete_local,
        retries: o.retries,
        backoff: ms(o.backoff_ms),
        max_backoff: ms(o.max_backoff_ms),
        deadline: ms(o.deadline_ms),
        part_size: (o.part_size as usize).max(upload::MIN_PART_SIZE),
    };
    Ok(UploadJob {
        inner: upload::enqueue(req),
    })
}

#[napi(object)]
pub struct UploadProgress {
    pub sent_bytes: f64,
    pub total_bytes: f64,
    pub attempts: u32,
    pub running: bool,
}

#[napi]
pub struct UploadJob {
    inner: upload::Upload,
}

#[napi]
impl UploadJob {
    /// The outcome as JSON once the upload ended, else null.
    #[napi(getter)]
    pub fn outcome(&self) -> Option<String> {
        self.inner.outcome().map(|v| v.to_string())
    }

    #[napi(getter)]
    pub fn progress(&self) -> UploadProgress {
        let (sent, total, attempts, running) = self.inner.progress();
        UploadProgress {
            sent_bytes: sent as f64,
            total_bytes: total as f64,
            attempts,
            running,
        }
    }

    /// Lock-free; a queued upload never starts, a running one stops within ~50 ms.
    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

#[napi(object)]
pub struct UploadQueue {
    pub waiting: u32,
    pub thread: bool,
}

/// Uploads waiting behind the running one, and whether the upload thread is alive.
#[napi]
pub fn upload_queue() -> UploadQueue {
    let (waiting, thread) = upload::queue_state();
    UploadQueue {
        waiting: waiting as u32,
        thread,
    }
}
