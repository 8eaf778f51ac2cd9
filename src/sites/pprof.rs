//! pprof encoding of a read profile: the message types of pprof's `profile.proto`
//! (github.com/google/pprof/proto/profile.proto), declared here with `prost`'s derive so
//! that prost encodes them — no hand-written wire format — then gzip (flate2), which is
//! what `go tool pprof`, Pyroscope and Grafana read.
//!
//! One pprof sample per profile node with live bytes: locations leaf first (one location
//! and one function per interned frame), values `[objects, space]` — sampled allocations
//! still alive and their bytes, as Go's `inuse_objects`/`inuse_space` — and the sampling
//! interval as the period. Runs on a libuv worker (the binding's `AsyncTask`).

use std::collections::HashMap;
use std::io::Write;

use prost::Message;

use super::{Frame, Read};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
    #[prost(int64, tag = "3")]
    pub column: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        Self {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }
    fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// The pprof `Profile` of `read` (not yet encoded). `interval` is the sampling interval, bytes.
pub fn profile(read: &Read, frames: &[Frame], interval: f64) -> Profile {
    let mut st = Strings::new();
    let objects = st.id("objects");
    let count = st.id("count");
    let space = st.id("space");
    let bytes = st.id("bytes");
    let mut per_node: HashMap<u32, i64> = HashMap::new();
    for s in &read.samples {
        *per_node.entry(s.node_id).or_insert(0) += 1;
    }
    let mut loc_of: HashMap<u32, u64> = HashMap::new();
    let mut location = Vec::new();
    let mut function = Vec::new();
    let mut sample = Vec::new();
    let mut stack = Vec::new();
    for (i, n) in read.nodes.iter().enumerate() {
        if n.self_bytes <= 0.0 {
            continue;
        }
        stack.clear();
        let mut j = i;
        loop {
            let node = read.nodes[j];
            if let Some(f) = frames.get(node.frame as usize) {
                if !f.is_pseudo() {
                    let id = *loc_of.entry(node.frame).or_insert_with(|| {
                        let id = location.len() as u64 + 1;
                        let name = st.id(if f.function_name.is_empty() {
                            "(anonymous)"
                        } else {
                            &f.function_name
                        });
                        let file = st.id(&f.file);
                        function.push(Function {
                            id,
                            name,
                            system_name: name,
                            filename: file,
                            start_line: 0,
                        });
                        location.push(Location {
                            id,
                            mapping_id: 0,
                            address: 0,
                            line: vec![Line {
                                function_id: id,
                                line: f.line as i64,
                                column: f.column as i64,
                            }],
                            is_folded: false,
                        });
                        id
                    });
                    stack.push(id);
                }
            }
            if node.parent < 0 || node.parent as usize >= j {
                break;
            }
            j = node.parent as usize;
        }
        sample.push(Sample {
            location_id: stack.clone(),
            value: vec![
                per_node.get(&n.id).copied().unwrap_or(0),
                n.self_bytes.round() as i64,
            ],
            label: Vec::new(),
        });
    }
    Profile {
        sample_type: vec![
            ValueType {
                r#type: objects,
                unit: count,
            },
            ValueType {
                r#type: space,
                unit: bytes,
            },
        ],
        sample,
        mapping: Vec::new(),
        location,
        function,
        time_nanos: (read.at * 1e6) as i64,
        period_type: Some(ValueType {
            r#type: space,
            unit: bytes,
        }),
        period: interval.round() as i64,
        default_sample_type: space,
        string_table: st.table,
        ..Default::default()
    }
}

/// gzip-compressed protobuf of [`profile`].
pub fn encode(read: &Read, frames: &[Frame], interval: f64) -> Vec<u8> {
    let raw = profile(read, frames, interval).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 3 + 64),
        flate2::Compression::new(6),
    );
    gz.write_all(&raw).expect("gzip into memory");
    gz.finish().expect("gzip into memory")
}
