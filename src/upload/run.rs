//! One upload job, driven on the `leakguard-upload` thread's current-thread runtime: the
//! attempts with backoff under one deadline, each file streamed to the store (a single PUT
//! up to one part, multipart above), the manifest amended with where everything went and
//! uploaded last, then the local files removed (`delete_local`) or the manifest rewritten.
//!
//! Invariants: nothing local is removed unless every object was confirmed by the store
//! (a PUT's 2xx, a multipart completion); a file confirmed in one attempt is not sent again
//! in the next; cancellation and the deadline are checked around every await (the attempt
//! future is raced against them); errors are classed once: permanent (credentials, a
//! missing bucket, a refused request, a local file gone) end the job at once, transient
//! ones (connection, 5xx, throttling, timeouts) are retried.

use std::fs::File;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::future::{select, Either};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use serde_json::{json, Map, Value};

use super::{FileSpec, Job, Shared, Target};
use crate::error::Code;

/// Read buffer for streaming a file into parts or a PUT body.
const READ_CHUNK: usize = 256 * 1024;
/// How often a running request looks at the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// Why an attempt failed.
#[derive(Debug)]
struct Failure {
    /// `auth`, `store`, `network`, `local`, `deadline`, `cancelled`.
    reason: &'static str,
    message: String,
    permanent: bool,
}

impl Failure {
    fn new(reason: &'static str, message: impl Into<String>, permanent: bool) -> Self {
        Self {
            reason,
            message: message.into(),
            permanent,
        }
    }

    fn local(what: impl std::fmt::Display, e: &std::io::Error) -> Self {
        Self::new("local", format!("{what}: {e}"), true)
    }
}

fn from_store(key: &str, e: object_store::Error) -> Failure {
    use object_store::Error as E;
    match e {
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => Failure::new(
            "auth",
            format!("the store refused the credentials for {key}: {e}"),
            true,
        ),
        E::NotFound { .. } => Failure::new(
            "store",
            format!("the store has no such bucket or path for {key}: {e}"),
            true,
        ),
        E::NotSupported { .. } | E::InvalidPath { .. } | E::NotImplemented { .. } => {
            Failure::new("store", format!("{key}: {e}"), true)
        }
        _ => Failure::new("network", format!("uploading {key}: {e}"), false),
    }
}

/// What one confirmed object looked like.
#[derive(Debug, Clone)]
struct Confirmed {
    bytes: u64,
    etag: Option<String>,
    parts: u32,
}

/// The outcome of a job that never ran or could not start (no thread, no runtime).
pub(super) fn failure(job: &Job, reason: &'static str, message: &str) -> Value {
    outcome_failure(job, &Failure::new(reason, message, true), &[], 0)
}

fn outcome_failure(job: &Job, f: &Failure, done: &[Option<Confirmed>], ms: u128) -> Value {
    let code = if f.reason == "cancelled" {
        Code::UploadAborted
    } else {
        Code::UploadFailed
    };
    let uploaded: Vec<&str> = job
        .req
        .files
        .iter()
        .zip(done.iter().chain(std::iter::repeat(&None)))
        .filter(|(_, d)| d.is_some())
        .map(|(f, _)| f.key.as_str())
        .collect();
    let kept: Vec<String> = job
        .req
        .files
        .iter()
        .filter(|f| f.path.exists())
        .map(|f| f.path.display().to_string())
        .collect();
    json!({
        "ok": false,
        "code": code.as_str(),
        "reason": f.reason,
        "message": format!("{}; the local files were kept", f.message),
        "attempts": job.shared.attempts.load(Ordering::Relaxed),
        "durationMs": ms as f64,
        "uploadedKeys": uploaded,
        "kept": kept,
    })
}

/// Run one job to its outcome. Never panics outward: a panic is an outcome too.
pub(super) fn run(rt: &tokio::runtime::Runtime, job: &Job) -> Value {
    let started = Instant::now();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(run_job(job, started))
    }));
    match res {
        Ok(v) => v,
        Err(_) => failure(job, "local", "the upload thread panicked"),
    }
}

async fn run_job(job: &Job, started: Instant) -> Value {
    let req = &job.req;
    let deadline = started + req.deadline;
    let mut done: Vec<Option<Confirmed>> = vec![None; req.files.len()];
    let mut manifest_text: Option<Vec<u8>> = None;
    let ms = || started.elapsed().as_millis();

    if job.shared.cancel.load(Ordering::SeqCst) {
        return outcome_failure(
            job,
            &Failure::new(
                "cancelled",
                "the upload was cancelled before it started",
                true,
            ),
            &done,
            ms(),
        );
    }
    let client = match Client::new(req) {
        Ok(c) => c,
        Err(f) => return outcome_failure(job, &f, &done, ms()),
    };
    let mut backoff = req.backoff;
    let mut last: Failure;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        job.shared.attempts.store(attempt, Ordering::Relaxed);
        let work = attempt_all(job, &client, &mut done, &mut manifest_text);
        last = match race(work, &job.shared, deadline).await {
            Ok(()) => break,
            Err(f) => f,
        };
        if last.permanent || attempt > req.retries {
            return outcome_failure(job, &last, &done, ms());
        }
        // Back off, but never past the deadline, and stop at once when cancelled.
        let pause = backoff.min(deadline.saturating_duration_since(Instant::now()));
        let sleep = async {
            tokio::time::sleep(pause).await;
            Ok(())
        };
        if let Err(f) = race(sleep, &job.shared, deadline).await {
            let f = Failure::new(
                f.reason,
                format!("{} (after: {})", f.message, last.message),
                true,
            );
            return outcome_failure(job, &f, &done, ms());
        }
        backoff = (backoff * 2).min(req.max_backoff);
    }

    // Every object is confirmed: only now touch the local files.
    let mut deleted = Vec::new();
    let mut delete_errors = Vec::new();
    if req.delete_local {
        for f in &req.files {
            match std::fs::remove_file(&f.path) {
                Ok(()) => deleted.push(f.path.display().to_string()),
                Err(e) => delete_errors.push(format!("{}: {e}", f.path.display())),
            }
        }
    } else if let (Some(text), Some(m)) = (
        &manifest_text,
        req.files.iter().find(|f| f.role == "manifest"),
    ) {
        if let Err(e) = crate::capture::files::write_atomic(&m.path, text) {
            delete_errors.push(format!("rewriting the manifest: {}", e.message));
        }
    }
    let files: Vec<Value> = req
        .files
        .iter()
        .zip(&done)
        .map(|(f, d)| {
            let d = d.as_ref().expect("every file confirmed");
            json!({
                "role": f.role,
                "path": f.path.display().to_string(),
                "key": f.key,
                "url": object_url(req, f),
                "bytes": d.bytes,
                "etag": d.etag,
                "parts": d.parts,
            })
        })
        .collect();
    let mut out = json!({
        "ok": true,
        "files": files,
        "bytes": done.iter().flatten().map(|d| d.bytes).sum::<u64>(),
        "attempts": attempt,
        "durationMs": ms() as f64,
        "uploadedAt": now_iso(),
        "deletedLocal": req.delete_local && delete_errors.is_empty(),
        "deleted": deleted,
    });
    if !delete_errors.is_empty() {
        out["warnings"] = json!(delete_errors);
    }
    let rec = out.as_object_mut().expect("object");
    for (k, v) in &req.record {
        rec.entry(k.clone()).or_insert_with(|| v.clone());
    }
    out
}

/// Race `work` against cancellation and the deadline.
async fn race<F>(work: F, shared: &Shared, deadline: Instant) -> Result<(), Failure>
where
    F: std::future::Future<Output = Result<(), Failure>>,
{
    let stop = async {
        loop {
            if shared.cancel.load(Ordering::SeqCst) {
                return Failure::new("cancelled", "the upload was cancelled", true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Failure::new("deadline", "the upload deadline passed", true);
            }
            tokio::time::sleep(CANCEL_POLL.min(deadline - now)).await;
        }
    };
    let work = std::pin::pin!(work);
    let stop = std::pin::pin!(stop);
    match select(work, stop).await {
        Either::Left((r, _)) => r,
        Either::Right((f, _)) => Err(f),
    }
}

/// One attempt: every file not yet confirmed, in order (the manifest last).
async fn attempt_all(
    job: &Job,
    client: &Client,
    done: &mut [Option<Confirmed>],
    manifest_text: &mut Option<Vec<u8>>,
) -> Result<(), Failure> {
    let req = &job.req;
    for (i, f) in req.files.iter().enumerate() {
        if done[i].is_some() {
            continue;
        }
        let confirmed = if f.role == "manifest" {
            let text = amended_manifest(job, f, done)?;
            let c = client
                .put_bytes(f, Bytes::from(text.clone()), &job.shared)
                .await?;
            *manifest_text = Some(text);
            c
        } else {
            client.put_file(f, req.part_size, &job.shared).await?
        };
        done[i] = Some(confirmed);
    }
    Ok(())
}

/// The manifest with `upload: { …record, files: [{ role, key, url, bytes, etag }] }`.
fn amended_manifest(
    job: &Job,
    m: &FileSpec,
    done: &[Option<Confirmed>],
) -> Result<Vec<u8>, Failure> {
    let raw = std::fs::read(&m.path)
        .map_err(|e| Failure::local(format!("reading {}", m.path.display()), &e))?;
    let mut v: Value = match serde_json::from_slice(&raw) {
        Ok(Value::Object(o)) => Value::Object(o),
        // Not a leakguard manifest: upload it as it is.
        _ => return Ok(raw),
    };
    let req = &job.req;
    let files: Vec<Value> = req
        .files
        .iter()
        .zip(done)
        .filter(|(f, _)| f.role != "manifest")
        .map(|(f, d)| {
            json!({
                "role": f.role,
                "key": f.key,
                "url": object_url(req, f),
                "bytes": d.as_ref().map(|d| d.bytes),
                "etag": d.as_ref().and_then(|d| d.etag.clone()),
            })
        })
        .collect();
    let mut rec: Map<String, Value> = req.record.clone();
    rec.insert("manifestKey".into(), json!(m.key));
    rec.insert("files".into(), Value::Array(files));
    rec.insert("uploadedAt".into(), json!(now_iso()));
    v["upload"] = Value::Object(rec);
    serde_json::to_vec_pretty(&v).map_err(|e| Failure::new("local", format!("manifest: {e}"), true))
}

/// Where an object is, without any credential or signature: `s3://bucket/key`, or the
/// pre-signed URL without its query string.
fn object_url(req: &super::Request, f: &FileSpec) -> String {
    match (&req.target, &f.url) {
        (Target::S3 { bucket, .. }, _) => format!("s3://{bucket}/{}", f.key),
        (Target::Presigned, Some(u)) => u.split(['?', '#']).next().unwrap_or("").to_string(),
        (Target::Presigned, None) => String::new(),
    }
}

fn now_iso() -> String {
    let t = SystemTime::now();
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or(0);
    let s = crate::capture::files::utc_stamp(t); // yyyymmddThhmmssZ
    format!(
        "{}-{}-{}T{}:{}:{}.{ms:03}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    )
}

enum Client {
    S3(AmazonS3),
    Presigned(reqwest::Client),
}

/// Per-request time limits: connecting, and one request (a part or a small PUT).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

impl Client {
    fn new(req: &super::Request) -> Result<Client, Failure> {
        match &req.target {
            Target::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                // from_env: AWS_ACCESS_KEY_ID/SECRET/SESSION_TOKEN, AWS_REGION,
                // AWS_ENDPOINT_URL, web identity (IRSA), ECS task role, then EC2 metadata.
                let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
                let endpoint = endpoint
                    .clone()
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL_S3").ok())
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
                let http = endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://"));
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e);
                }
                if let Some(r) = region {
                    b = b.with_region(r);
                }
                if let Some(k) = access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(s) = secret_access_key {
                    b = b.with_secret_access_key(s);
                }
                if let Some(t) = session_token {
                    b = b.with_token(t);
                }
                // Transient per-request failures are retried inside object_store briefly
                // (so one dropped part does not restart the file); the job's own attempts
                // with backoff sit above that.
                let retry = RetryConfig {
                    backoff: BackoffConfig {
                        init_backoff: Duration::from_millis(100),
                        max_backoff: Duration::from_secs(2),
                        base: 2.0,
                    },
                    max_retries: 2,
                    retry_timeout: Duration::from_secs(30),
                };
                let opts = ClientOptions::new()
                    .with_allow_http(http)
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    .with_timeout(REQUEST_TIMEOUT);
                b.with_retry(retry)
                    .with_client_options(opts)
                    .build()
                    .map(Client::S3)
                    .map_err(|e| {
                        Failure::new("store", format!("configuring the S3 client: {e}"), true)
                    })
            }
            Target::Presigned => reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build()
                .map(Client::Presigned)
                .map_err(|e| {
                    Failure::new("local", format!("configuring the HTTP client: {e}"), true)
                }),
        }
    }

    async fn put_bytes(
        &self,
        f: &FileSpec,
        body: Bytes,
        shared: &Arc<Shared>,
    ) -> Result<Confirmed, Failure> {
        let len = body.len() as u64;
        let c = match self {
            Client::S3(s3) => {
                let r = s3
                    .put_opts(
                        &object_path(&f.key)?,
                        PutPayload::from(body),
                        put_options(f),
                    )
                    .await
                    .map_err(|e| from_store(&f.key, e))?;
                Confirmed {
                    bytes: len,
                    etag: r.e_tag,
                    parts: 1,
                }
            }
            Client::Presigned(http) => {
                let url = f.url.as_deref().unwrap_or("");
                presigned_put(http, url, f, len, reqwest::Body::from(body)).await?
            }
        };
        shared.sent.fetch_add(len, Ordering::Relaxed);
        Ok(c)
    }

    async fn put_file(
        &self,
        f: &FileSpec,
        part_size: usize,
        shared: &Arc<Shared>,
    ) -> Result<Confirmed, Failure> {
        let what = || format!("reading {}", f.path.display());
        let mut file = File::open(&f.path).map_err(|e| Failure::local(what(), &e))?;
        let len = file
            .metadata()
            .map_err(|e| Failure::local(what(), &e))?
            .len();
        match self {
            Client::S3(_) if len <= part_size as u64 => {
                let mut buf = Vec::with_capacity(len as usize);
                (&mut file)
                    .take(len)
                    .read_to_end(&mut buf)
                    .map_err(|e| Failure::local(what(), &e))?;
                self.put_bytes(f, Bytes::from(buf), shared).await
            }
            Client::S3(s3) => multipart(s3, f, file, len, part_size, shared).await,
            Client::Presigned(http) => {
                let url = f.url.as_deref().unwrap_or("");
                let body = reqwest::Body::wrap_stream(file_stream(file, shared.clone()));
                presigned_put(http, url, f, len, body).await
            }
        }
    }
}

fn object_path(key: &str) -> Result<ObjectPath, Failure> {
    ObjectPath::parse(key).map_err(|e| {
        Failure::new(
            "store",
            format!("the object key {key:?} is not valid: {e}"),
            true,
        )
    })
}

fn attributes(f: &FileSpec) -> Attributes {
    let mut a = Attributes::new();
    a.insert(Attribute::ContentType, f.content_type.clone().into());
    a
}

fn put_options(f: &FileSpec) -> PutOptions {
    PutOptions {
        attributes: attributes(f),
        ..Default::default()
    }
}

/// Multipart: parts of `part_size` from a `READ_CHUNK` buffer; at most one part in flight
/// while the next fills, so memory is bounded by two parts and the read buffer. A failure
/// while parts are sent aborts the upload on the store.
async fn multipart(
    s3: &AmazonS3,
    f: &FileSpec,
    mut file: File,
    len: u64,
    part_size: usize,
    shared: &Shared,
) -> Result<Confirmed, Failure> {
    let opts = PutMultipartOptions {
        attributes: attributes(f),
        ..Default::default()
    };
    let up = s3
        .put_multipart_opts(&object_path(&f.key)?, opts)
        .await
        .map_err(|e| from_store(&f.key, e))?;
    let mut w = WriteMultipart::new_with_chunk_size(up, part_size);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut read = 0u64;
    let fail = |e: Failure, w: WriteMultipart| async move {
        let _ = w.abort().await;
        Err(e)
    };
    while read < len {
        // Before more is buffered, at most one part in flight (`wait_for_capacity(n)` waits
        // while n or more are): one part sends while the next fills; a write that completes
        // a part starts it at once, and the next turn waits — two parts at most, and the
        // buffer is empty whenever two are in flight.
        if let Err(e) = w.wait_for_capacity(2).await {
            return fail(from_store(&f.key, e), w).await;
        }
        let want = READ_CHUNK.min((len - read) as usize);
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => {
                let e = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was uploaded",
                );
                return fail(Failure::local(f.path.display(), &e), w).await;
            }
            Ok(n) => n,
            Err(e) => return fail(Failure::local(f.path.display(), &e), w).await,
        };
        w.write(&buf[..n]);
        read += n as u64;
        shared.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    let parts = len.div_ceil(part_size as u64) as u32;
    let r = w.finish().await.map_err(|e| from_store(&f.key, e))?;
    Ok(Confirmed {
        bytes: len,
        etag: r.e_tag,
        parts,
    })
}

/// A file as a stream of `READ_CHUNK` pieces, read on the runtime's own thread.
fn file_stream(
    file: File,
    shared: Arc<Shared>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + Sync + 'static {
    let state = (file, vec![0u8; READ_CHUNK], shared);
    futures_util::stream::try_unfold(state, |(mut file, mut buf, shared)| async move {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        shared.sent.fetch_add(n as u64, Ordering::Relaxed);
        let chunk = Bytes::copy_from_slice(&buf[..n]);
        Ok(Some((chunk, (file, buf, shared))))
    })
}

/// One PUT to a pre-signed URL with an exact Content-Length (S3 refuses chunked bodies).
async fn presigned_put(
    http: &reqwest::Client,
    url: &str,
    f: &FileSpec,
    len: u64,
    body: reqwest::Body,
) -> Result<Confirmed, Failure> {
    let shown = url.split('?').next().unwrap_or("");
    let resp = http
        .put(url)
        .header(reqwest::header::CONTENT_LENGTH, len)
        .header(reqwest::header::CONTENT_TYPE, f.content_type.as_str())
        .timeout(REQUEST_TIMEOUT)
        .body(body)
        .send()
        .await
        .map_err(|e| Failure::new("network", format!("PUT {shown}: {e}"), false))?;
    let status = resp.status();
    if status.is_success() {
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        return Ok(Confirmed {
            bytes: len,
            etag,
            parts: 1,
        });
    }
    let text = resp.text().await.unwrap_or_default();
    let detail: String = text.chars().take(300).collect();
    let code = status.as_u16();
    let (reason, permanent) = match code {
        401 | 403 => ("auth", true),
        408 | 429 => ("network", false),
        400..=499 => ("store", true),
        _ => ("network", false),
    };
    Err(Failure::new(
        reason,
        format!("PUT {shown} answered {status}: {detail}"),
        permanent,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_time_has_the_rfc3339_shape() {
        let s = now_iso();
        assert_eq!(s.len(), 24, "{s}");
        assert_eq!(&s[4..5], "-");
        assert_eq!(&s[10..11], "T");
        assert!(s.ends_with('Z'));
    }

    #[test]
    fn object_urls_never_carry_a_signature() {
        let req = super::super::Request {
            target: Target::Presigned,
            files: vec![],
            record: Map::new(),
            delete_local: true,
            retries: 0,
            backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            deadline: Duration::ZERO,
            part_size: super::super::DEFAULT_PART_SIZE,
        };
        let f = FileSpec {
            role: "snapshot".into(),
            path: "x".into(),
            key: "k".into(),
            url: Some("https://h/b/k?X-Amz-Signature=abc".into()),
            content_type: "application/gzip".into(),
        };
        assert_eq!(object_url(&req, &f), "https://h/b/k");
    }
}
