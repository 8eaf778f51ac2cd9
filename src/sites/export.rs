//! The last read profile as files people already open: Chrome DevTools' `.heapprofile`
//! JSON (the shape `HeapProfiler.getSamplingProfile` answers: a call tree of `callFrame`,
//! `selfSize`, `id`, `children`, plus `samples`) and pprof ([`super::pprof`]).
//!
//! Runs on a libuv worker (the binding's `AsyncTask`), on a copy of the read: never on
//! the JS thread. Files are written through [`crate::capture::files::write_atomic`]
//! (private 0600 temporary, fsync, rename): a failed export leaves no partial file.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{Frame, Read};
use crate::error::{Code, Error, Result};

/// The `.heapprofile` JSON of `read`: lines and columns back to the protocol's 0-based.
pub fn heapprofile(read: &Read, frames: &[Frame]) -> Vec<u8> {
    let n = read.nodes.len();
    // Children lists from the pre-order parent links.
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, node) in read.nodes.iter().enumerate() {
        if node.parent >= 0 && (node.parent as usize) < i {
            children[node.parent as usize].push(i);
        } else {
            roots.push(i);
        }
    }
    fn build(i: usize, read: &Read, frames: &[Frame], children: &[Vec<usize>]) -> Value {
        let node = read.nodes[i];
        let f = frames.get(node.frame as usize);
        let mut cf = Map::new();
        cf.insert(
            "functionName".into(),
            json!(f.map_or("", |f| f.function_name.as_str())),
        );
        cf.insert(
            "scriptId".into(),
            json!(f.map_or(0, |f| f.script_id).to_string()),
        );
        cf.insert("url".into(), json!(f.map_or("", |f| f.url.as_str())));
        cf.insert(
            "lineNumber".into(),
            json!(f.map_or(-1, |f| f.line as i64 - 1)),
        );
        cf.insert(
            "columnNumber".into(),
            json!(f.map_or(-1, |f| f.column as i64 - 1)),
        );
        let kids: Vec<Value> = children[i]
            .iter()
            .map(|&c| build(c, read, frames, children))
            .collect();
        json!({ "callFrame": Value::Object(cf), "selfSize": node.self_bytes, "id": node.id, "children": kids })
    }
    let head = match roots.as_slice() {
        [r] => build(*r, read, frames, &children),
        _ => {
            // Never from V8 (one root); keep a valid file anyway.
            let kids: Vec<Value> = roots
                .iter()
                .map(|&r| build(r, read, frames, &children))
                .collect();
            json!({ "callFrame": { "functionName": "(root)", "scriptId": "0", "url": "", "lineNumber": -1, "columnNumber": -1 }, "selfSize": 0, "id": 0, "children": kids })
        }
    };
    let samples: Vec<Value> = read
        .samples
        .iter()
        .map(|s| json!({ "size": s.size, "nodeId": s.node_id, "ordinal": s.ordinal }))
        .collect();
    serde_json::to_vec(&json!({ "head": head, "samples": samples })).expect("JSON of plain values")
}

/// Write `bytes` to `path` atomically, 0600.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::capture::files::write_atomic(path, bytes)
        .map_err(|e| Error::new(Code::AllocationsWriteFailed, e.message))
}
