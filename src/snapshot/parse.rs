//! The push tokenizer for V8's `.heapsnapshot` JSON, shared by the reader (which builds a
//! [`super::HeapSnapshot`]) and the capture histogram (which only counts). It is fed the
//! uncompressed JSON in chunks of any size — a chunk may end inside a number, a string or
//! an escape — and hands the records to a [`Sink`]. It runs on whichever thread feeds it
//! (the reader's `leakguard-snapshot-parse` thread, or the capture thread).
//!
//! What it accepts (V8's `HeapSnapshotJSONSerializer` order): one top-level object whose
//! `snapshot` member (the header, parsed with serde_json) comes first, then `nodes`
//! before `edges` and before `strings`; `locations` anywhere after the header; any other
//! member (`trace_function_infos`, `trace_tree`, `samples`, future ones) skipped without
//! being stored. Fields are found by name through `meta.*_fields`.
//!
//! Invariants it enforces, each failure an `ANALYSIS_INVALID_SNAPSHOT` error that names
//! the byte offset in the uncompressed stream and the section: well-formed JSON in the
//! sections it reads, non-negative integers in the number arrays, type indices within
//! `meta`'s type lists, node/edge counts equal to the header's, the nodes' `edge_count`s
//! summing to the edges present, every `to_node` a multiple of the node field count and
//! within the nodes, every name index within `strings`. It never panics on input, and
//! holds nothing of the file but the current string and the header.

use crate::error::{Code, Error, Result};
use memchr::{memchr, memchr2};

use super::Location;

/// A node as read, fields resolved through `meta.node_fields`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NodeRec {
    pub ty: u8,
    pub name: u32,
    pub id: u64,
    pub self_size: u64,
    pub edge_count: u32,
    pub detachedness: u8,
}

/// The header's facts the sinks need.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub node_types: Vec<String>,
    pub edge_types: Vec<String>,
    pub node_count: u64,
    pub edge_count: u64,
    pub has_detachedness: bool,
    pub node_field_count: usize,
    pub edge_field_count: usize,
}

/// Where the records go. Monomorphized into the tokenizer's hot loops.
pub(crate) trait Sink {
    /// `false`: the `edges` array is skipped (scanned for its `]` only) and the edge
    /// counts are not checked.
    const EDGES: bool;
    /// `false`: the `locations` array is skipped likewise.
    const LOCATIONS: bool;
    fn header(&mut self, h: &Header) -> Result<()>;
    fn node(&mut self, n: &NodeRec);
    /// `name` is a string index for named edge types, the element index otherwise; `to`
    /// is the target's ordinal.
    fn edge(&mut self, ty: u8, name: u32, to: u32);
    fn location(&mut self, loc: Location);
    /// Called once when the `nodes` array has ended.
    fn nodes_done(&mut self) {}
    /// Whether string `i` (called for every index, in order) is wanted.
    fn wants_string(&mut self, i: u32) -> bool;
    fn string(&mut self, i: u32, s: &str);
}

/// Largest header (`snapshot` member) accepted; V8's is ~1-2 KiB.
const MAX_HEADER: usize = 1 << 20;
/// Deepest nesting skipped in an unknown member.
const MAX_SKIP_DEPTH: usize = 1 << 16;
/// Most fields a record may have (V8 has 7 node fields, 3 edge fields, 4 location fields).
const MAX_FIELDS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sec {
    Top,
    Header,
    Nodes,
    Edges,
    Locations,
    Strings,
    Other,
}

impl Sec {
    fn name(self) -> &'static str {
        match self {
            Sec::Top => "top level",
            Sec::Header => "snapshot header",
            Sec::Nodes => "nodes",
            Sec::Edges => "edges",
            Sec::Locations => "locations",
            Sec::Strings => "strings",
            Sec::Other => "skipped member",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Before the top-level `{`.
    Start,
    /// After `{` (`first`) or `,`: a key's `"` (or `}` when first).
    KeyStart {
        first: bool,
    },
    Key,
    Colon,
    /// Before the member's value.
    Value,
    /// Capturing the raw header object.
    Header,
    /// Inside a number array (`sec` says which).
    Nums,
    /// Skipping the edges array to its `]` (histogram).
    SkipNums,
    Strs,
    Skip,
    /// After a member's value: `,` or `}`.
    AfterMember,
    Done,
}

/// Sub-state of arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ex {
    /// Just after `[`: a value or `]`.
    First,
    /// After `,`: a value.
    Value,
    /// In a number / string.
    In,
    /// After a value: `,` or `]`.
    After,
}

/// String-escape state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    /// After `\`.
    Backslash,
    /// In `\uXXXX`, `n` hex digits read so far.
    Hex {
        n: u8,
        v: u16,
    },
}

/// Positions of the fields in a node / edge / location record.
#[derive(Debug, Clone, Copy, Default)]
struct NodePos {
    ty: usize,
    name: usize,
    id: usize,
    size: usize,
    edges: usize,
    detached: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default)]
struct EdgePos {
    ty: usize,
    name: usize,
    to: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct LocPos {
    node: usize,
    script: usize,
    line: usize,
    col: usize,
}

pub(crate) struct Parser<S: Sink> {
    pub sink: S,
    /// Offset of the current chunk's first byte in the uncompressed stream.
    base: u64,
    st: St,
    sec: Sec,
    /// snapshot, nodes, edges, locations, strings.
    seen: [bool; 5],
    key: Vec<u8>,
    key_unknown: bool,
    key_esc: bool,
    hdr_buf: Vec<u8>,
    hdr_start: u64,
    hdr_depth: u32,
    hdr_in_str: bool,
    hdr_esc: bool,
    header: Option<Header>,

    // number arrays
    ex: Ex,
    acc: u64,
    digits: u32,
    field: usize,
    rec: [u64; MAX_FIELDS],
    nfc: usize,
    efc: usize,
    lfc: usize,
    npos: NodePos,
    epos: EdgePos,
    lpos: Option<LocPos>,
    n_node_types: u64,
    n_edge_types: u64,
    nodes: u64,
    edges: u64,
    edge_count_sum: u64,
    /// Per edge type: whether its `name_or_index` is a string index.
    edge_named: Vec<bool>,
    max_node_name: Option<(u32, u64)>,
    max_edge_name: Option<(u32, u64)>,

    // strings
    str_buf: Vec<u8>,
    str_keep: bool,
    str_index: u32,
    esc: Esc,
    pending_high: Option<u16>,
    strings: u64,

    // skipping an unknown member
    skip_stack: Vec<u8>,
    skip_in_str: bool,
    skip_esc: bool,
    skip_scalar: bool,
}

impl<S: Sink> Parser<S> {
    pub fn new(sink: S) -> Self {
        Self {
            sink,
            base: 0,
            st: St::Start,
            sec: Sec::Top,
            seen: [false; 5],
            key: Vec::new(),
            key_unknown: false,
            key_esc: false,
            hdr_buf: Vec::new(),
            hdr_start: 0,
            hdr_depth: 0,
            hdr_in_str: false,
            hdr_esc: false,
            header: None,
            ex: Ex::First,
            acc: 0,
            digits: 0,
            field: 0,
            rec: [0; MAX_FIELDS],
            nfc: 0,
            efc: 0,
            lfc: 0,
            npos: NodePos::default(),
            epos: EdgePos::default(),
            lpos: None,
            n_node_types: 0,
            n_edge_types: 0,
            nodes: 0,
            edges: 0,
            edge_count_sum: 0,
            edge_named: Vec::new(),
            max_node_name: None,
            max_edge_name: None,
            str_buf: Vec::new(),
            str_keep: false,
            str_index: 0,
            esc: Esc::None,
            pending_high: None,
            strings: 0,
            skip_stack: Vec::new(),
            skip_in_str: false,
            skip_esc: false,
            skip_scalar: false,
        }
    }

    /// Bytes consumed so far (the uncompressed stream's offset).
    pub fn offset(&self) -> u64 {
        self.base
    }

    fn err(&self, i: usize, what: impl std::fmt::Display) -> Error {
        invalid(self.sec.name(), self.base + i as u64, what)
    }

    /// Feed the next chunk of the uncompressed JSON.
    pub fn feed(&mut self, buf: &[u8]) -> Result<()> {
        let mut i = 0;
        while i < buf.len() {
            i = match self.st {
                St::Nums => match self.sec {
                    Sec::Nodes => self.nums::<0>(buf, i)?,
                    Sec::Edges => self.nums::<1>(buf, i)?,
                    _ => self.nums::<2>(buf, i)?,
                },
                St::Strs => self.strs(buf, i)?,
                St::SkipNums => match memchr(b']', &buf[i..]) {
                    Some(k) => {
                        self.seen[if self.sec == Sec::Edges { 2 } else { 3 }] = true;
                        self.st = St::AfterMember;
                        self.sec = Sec::Top;
                        i + k + 1
                    }
                    None => buf.len(),
                },
                St::Header => self.header_bytes(buf, i)?,
                St::Skip => self.skip(buf, i)?,
                St::Key => self.key_bytes(buf, i),
                _ => self.punct(buf, i)?,
            };
        }
        self.base += buf.len() as u64;
        Ok(())
    }

    /// The stream has ended: check the whole and hand back the sink.
    pub fn finish(self) -> Result<S> {
        let end = self.base;
        if self.st != St::Done {
            let what = if self.st == St::Start {
                "the stream is empty".to_string()
            } else {
                "the stream ends early (truncated)".to_string()
            };
            return Err(invalid(self.sec.name(), end, what));
        }
        for (k, name) in [(0, "snapshot"), (1, "nodes"), (2, "edges"), (4, "strings")] {
            if !self.seen[k] {
                return Err(invalid("top level", end, format!("no \"{name}\" member")));
            }
        }
        if self.nodes == 0 {
            return Err(invalid(
                "nodes",
                end,
                "no nodes (a snapshot has at least its root)",
            ));
        }
        let strings = self.strings;
        if let Some((m, at)) = self.max_node_name {
            if m as u64 >= strings {
                return Err(invalid(
                    "nodes",
                    at,
                    format!("a node's name index {m} is out of range of the {strings} strings"),
                ));
            }
        }
        if let Some((m, at)) = self.max_edge_name {
            if m as u64 >= strings {
                return Err(invalid(
                    "edges",
                    at,
                    format!("an edge's name index {m} is out of range of the {strings} strings"),
                ));
            }
        }
        Ok(self.sink)
    }

    fn key_bytes(&mut self, buf: &[u8], mut i: usize) -> usize {
        if self.key_esc {
            self.key_esc = false;
            return i + 1;
        }
        let rest = &buf[i..];
        match memchr2(b'"', b'\\', rest) {
            Some(k) if rest[k] == b'"' => {
                self.push_key(&rest[..k]);
                self.st = St::Colon;
                i + k + 1
            }
            Some(k) => {
                // No V8 member name has an escape: this one matches none.
                self.key_unknown = true;
                self.key_esc = true;
                i += k + 1;
                i
            }
            None => {
                self.push_key(rest);
                buf.len()
            }
        }
    }

    fn push_key(&mut self, b: &[u8]) {
        if self.key.len() + b.len() > 64 {
            self.key_unknown = true;
        } else {
            self.key.extend_from_slice(b);
        }
    }

    fn punct(&mut self, buf: &[u8], i: usize) -> Result<usize> {
        let b = buf[i];
        if is_ws(b) {
            return Ok(i + 1);
        }
        match self.st {
            St::Start => {
                if b != b'{' {
                    return Err(self.err(
                        i,
                        format!(
                            "expected '{{', found {} (the input is neither gzip nor a JSON heap snapshot)",
                            show(b)
                        ),
                    ));
                }
                self.st = St::KeyStart { first: true };
            }
            St::KeyStart { first } => {
                if b == b'"' {
                    self.key.clear();
                    self.key_unknown = false;
                    self.key_esc = false;
                    self.st = St::Key;
                } else if b == b'}' && first {
                    self.st = St::Done;
                } else {
                    return Err(self.err(i, format!("expected a member name, found {}", show(b))));
                }
            }
            St::Colon => {
                if b != b':' {
                    return Err(self.err(i, format!("expected ':', found {}", show(b))));
                }
                self.st = St::Value;
            }
            St::Value => return self.begin_value(buf, i),
            St::AfterMember => match b {
                b',' => self.st = St::KeyStart { first: false },
                b'}' => self.st = St::Done,
                _ => {
                    return Err(self.err(i, format!("expected ',' or '}}', found {}", show(b))));
                }
            },
            St::Done => {
                return Err(self.err(
                    i,
                    format!("data after the end of the snapshot object: {}", show(b)),
                ))
            }
            _ => unreachable!("punct in a content state"),
        }
        Ok(i + 1)
    }

    fn begin_value(&mut self, buf: &[u8], i: usize) -> Result<usize> {
        let b = buf[i];
        let key: &[u8] = if self.key_unknown { b"" } else { &self.key };
        let (slot, sec) = match key {
            b"snapshot" => (0, Sec::Header),
            b"nodes" => (1, Sec::Nodes),
            b"edges" => (2, Sec::Edges),
            b"locations" => (3, Sec::Locations),
            b"strings" => (4, Sec::Strings),
            _ => {
                self.sec = Sec::Other;
                self.st = St::Skip;
                self.skip_stack.clear();
                self.skip_in_str = false;
                self.skip_esc = false;
                self.skip_scalar = false;
                return Ok(i);
            }
        };
        self.sec = sec;
        if self.seen[slot] {
            return Err(self.err(i, format!("a second \"{}\" member", sec.name())));
        }
        if sec != Sec::Header && self.header.is_none() {
            return Err(self.err(i, "this member comes before the \"snapshot\" header"));
        }
        if matches!(sec, Sec::Edges | Sec::Strings) && !self.seen[1] {
            return Err(self.err(
                i,
                "this member comes before \"nodes\" (V8 writes nodes, then edges, then strings)",
            ));
        }
        let open = if sec == Sec::Header { b'{' } else { b'[' };
        if b != open {
            let want = if open == b'{' {
                "an object"
            } else {
                "an array"
            };
            return Err(self.err(i, format!("expected {want}, found {}", show(b))));
        }
        match sec {
            Sec::Header => {
                self.hdr_buf.clear();
                self.hdr_buf.push(b'{');
                self.hdr_start = self.base + i as u64;
                self.hdr_depth = 1;
                self.hdr_in_str = false;
                self.hdr_esc = false;
                self.st = St::Header;
            }
            Sec::Strings => {
                self.ex = Ex::First;
                self.str_index = 0;
                self.st = St::Strs;
            }
            Sec::Edges if !S::EDGES => self.st = St::SkipNums,
            Sec::Locations if !S::LOCATIONS => self.st = St::SkipNums,
            Sec::Locations if self.lpos.is_none() => {
                return Err(self.err(
                    i,
                    "a \"locations\" member but meta.location_fields lacks object_index, script_id, line or column",
                ))
            }
            _ => {
                self.ex = Ex::First;
                self.field = 0;
                self.acc = 0;
                self.digits = 0;
                self.st = St::Nums;
            }
        }
        Ok(i + 1)
    }

    fn end_member(&mut self) {
        self.st = St::AfterMember;
        self.sec = Sec::Top;
    }

    // ---------------------------------------------------------------- header

    fn header_bytes(&mut self, buf: &[u8], start: usize) -> Result<usize> {
        let mut i = start;
        let mut end = None;
        while i < buf.len() {
            let b = buf[i];
            i += 1;
            if self.hdr_in_str {
                if self.hdr_esc {
                    self.hdr_esc = false;
                } else if b == b'\\' {
                    self.hdr_esc = true;
                } else if b == b'"' {
                    self.hdr_in_str = false;
                }
                continue;
            }
            match b {
                b'"' => self.hdr_in_str = true,
                b'{' | b'[' => self.hdr_depth += 1,
                b'}' | b']' => {
                    self.hdr_depth -= 1;
                    if self.hdr_depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        if self.hdr_buf.len() + (i - start) > MAX_HEADER {
            return Err(self.err(i, format!("a header larger than {MAX_HEADER} bytes")));
        }
        self.hdr_buf.extend_from_slice(&buf[start..i]);
        if end.is_some() {
            self.parse_header()?;
            self.seen[0] = true;
            self.end_member();
        }
        Ok(i)
    }

    fn parse_header(&mut self) -> Result<()> {
        let at = self.hdr_start;
        let bad = |what: String| invalid("snapshot header", at, what);
        let v: serde_json::Value = serde_json::from_slice(&self.hdr_buf)
            .map_err(|e| bad(format!("the header is not valid JSON ({e})")))?;
        let meta = v
            .get("meta")
            .filter(|m| m.is_object())
            .ok_or_else(|| bad("no \"meta\" object".into()))?;
        let strs = |key: &str, v: Option<&serde_json::Value>| -> Result<Vec<String>> {
            let a = v
                .and_then(|v| v.as_array())
                .ok_or_else(|| bad(format!("meta.{key} is missing or not an array")))?;
            a.iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("meta.{key} holds a non-string")))
                })
                .collect()
        };
        let node_fields = strs("node_fields", meta.get("node_fields"))?;
        let edge_fields = strs("edge_fields", meta.get("edge_fields"))?;
        let node_types = strs(
            "node_types[0]",
            meta.get("node_types").and_then(|t| t.get(0)),
        )?;
        let edge_types = strs(
            "edge_types[0]",
            meta.get("edge_types").and_then(|t| t.get(0)),
        )?;
        let location_fields = match meta.get("location_fields") {
            None => None,
            v => Some(strs("location_fields", v)?),
        };
        let count = |key: &str| -> Result<u64> {
            let n = v
                .get(key)
                .and_then(|n| n.as_u64())
                .ok_or_else(|| bad(format!("snapshot.{key} is missing or not a count")))?;
            if n > u32::MAX as u64 {
                return Err(bad(format!(
                    "snapshot.{key} is {n}, beyond the 4,294,967,295 the reader supports"
                )));
            }
            Ok(n)
        };
        let node_count = count("node_count")?;
        let edge_count = count("edge_count")?;
        if node_types.is_empty() || node_types.len() > 256 {
            return Err(bad(format!(
                "meta.node_types[0] has {} types (1 to 256 supported)",
                node_types.len()
            )));
        }
        if edge_types.is_empty() || edge_types.len() > 256 {
            return Err(bad(format!(
                "meta.edge_types[0] has {} types (1 to 256 supported)",
                edge_types.len()
            )));
        }
        let find = |fields: &[String], list: &str, name: &str| -> Result<Option<usize>> {
            let mut it = fields.iter().enumerate().filter(|(_, f)| *f == name);
            let first = it.next().map(|(k, _)| k);
            if it.next().is_some() {
                return Err(bad(format!("meta.{list} names \"{name}\" twice")));
            }
            Ok(first)
        };
        let need = |fields: &[String], list: &str, name: &str| -> Result<usize> {
            find(fields, list, name)?.ok_or_else(|| bad(format!("meta.{list} has no \"{name}\"")))
        };
        for (fields, list) in [(&node_fields, "node_fields"), (&edge_fields, "edge_fields")] {
            if fields.len() > MAX_FIELDS {
                return Err(bad(format!(
                    "meta.{list} has {} fields (at most {MAX_FIELDS} supported)",
                    fields.len()
                )));
            }
        }
        self.npos = NodePos {
            ty: need(&node_fields, "node_fields", "type")?,
            name: need(&node_fields, "node_fields", "name")?,
            id: need(&node_fields, "node_fields", "id")?,
            size: need(&node_fields, "node_fields", "self_size")?,
            edges: need(&node_fields, "node_fields", "edge_count")?,
            detached: find(&node_fields, "node_fields", "detachedness")?,
        };
        self.epos = EdgePos {
            ty: need(&edge_fields, "edge_fields", "type")?,
            name: need(&edge_fields, "edge_fields", "name_or_index")?,
            to: need(&edge_fields, "edge_fields", "to_node")?,
        };
        // Without location_fields, V8's own order.
        let lf = location_fields.unwrap_or_else(|| {
            ["object_index", "script_id", "line", "column"]
                .map(String::from)
                .to_vec()
        });
        self.lpos = if lf.len() <= MAX_FIELDS {
            match (
                find(&lf, "location_fields", "object_index")?,
                find(&lf, "location_fields", "script_id")?,
                find(&lf, "location_fields", "line")?,
                find(&lf, "location_fields", "column")?,
            ) {
                (Some(node), Some(script), Some(line), Some(col)) => Some(LocPos {
                    node,
                    script,
                    line,
                    col,
                }),
                _ => None,
            }
        } else {
            None
        };
        self.nfc = node_fields.len();
        self.efc = edge_fields.len();
        self.lfc = lf.len();
        self.n_node_types = node_types.len() as u64;
        self.n_edge_types = edge_types.len() as u64;
        self.edge_named = edge_types
            .iter()
            .map(|t| t != "element" && t != "hidden")
            .collect();
        let h = Header {
            node_types,
            edge_types,
            node_count,
            edge_count,
            has_detachedness: self.npos.detached.is_some(),
            node_field_count: self.nfc,
            edge_field_count: self.efc,
        };
        self.sink.header(&h)?;
        self.header = Some(h);
        self.hdr_buf = Vec::new();
        Ok(())
    }

    // ---------------------------------------------------------------- numbers

    /// The number arrays' hot loop; `SEC` 0 nodes, 1 edges, 2 locations.
    fn nums<const SEC: u8>(&mut self, buf: &[u8], start: usize) -> Result<usize> {
        let n = buf.len();
        let mut i = start;
        while i < n {
            match self.ex {
                Ex::In => {
                    let mut acc = self.acc;
                    let mut digits = self.digits;
                    loop {
                        while i < n {
                            let d = buf[i].wrapping_sub(b'0');
                            if d > 9 {
                                break;
                            }
                            if digits < 19 {
                                acc = acc * 10 + d as u64;
                            } else {
                                acc = acc
                                    .checked_mul(10)
                                    .and_then(|a| a.checked_add(d as u64))
                                    .ok_or_else(|| self.err(i, "a number too large for 64 bits"))?;
                            }
                            digits += 1;
                            i += 1;
                        }
                        if i == n {
                            self.acc = acc;
                            self.digits = digits;
                            return Ok(n);
                        }
                        if matches!(buf[i], b'.' | b'e' | b'E') {
                            return Err(self.err(i, "a number that is not an integer"));
                        }
                        self.value::<SEC>(acc, i)?;
                        acc = 0;
                        digits = 0;
                        // The common separators, `,` and V8's `\n,` before a digit, without
                        // a trip through the state machine.
                        let mut j = i;
                        if j < n && buf[j] == b'\n' {
                            j += 1;
                        }
                        if j + 1 < n && buf[j] == b',' && buf[j + 1].is_ascii_digit() {
                            i = j + 1;
                            continue;
                        }
                        break;
                    }
                    self.acc = 0;
                    self.digits = 0;
                    self.ex = Ex::After;
                }
                Ex::After => {
                    let b = buf[i];
                    i += 1;
                    match b {
                        b',' => {
                            self.ex = Ex::Value;
                            // The common case: the next number follows at once.
                            if i < n && buf[i].is_ascii_digit() {
                                self.ex = Ex::In;
                            }
                        }
                        b']' => {
                            self.end_nums::<SEC>(i)?;
                            return Ok(i);
                        }
                        _ if is_ws(b) => {}
                        _ => {
                            return Err(self.err(
                                i - 1,
                                format!("expected ',' or ']' after a number, found {}", show(b)),
                            ))
                        }
                    }
                }
                Ex::Value | Ex::First => {
                    let b = buf[i];
                    if b.is_ascii_digit() {
                        self.ex = Ex::In;
                        continue;
                    }
                    if is_ws(b) {
                        i += 1;
                        continue;
                    }
                    if b == b']' && self.ex == Ex::First {
                        self.end_nums::<SEC>(i + 1)?;
                        return Ok(i + 1);
                    }
                    let what = match b {
                        b'-' => "a negative number".to_string(),
                        _ => format!("expected a non-negative integer, found {}", show(b)),
                    };
                    return Err(self.err(i, what));
                }
            }
        }
        Ok(n)
    }

    #[inline(always)]
    fn value<const SEC: u8>(&mut self, v: u64, i: usize) -> Result<()> {
        let nf = match SEC {
            0 => self.nfc,
            1 => self.efc,
            _ => self.lfc,
        };
        self.rec[self.field] = v;
        self.field += 1;
        if self.field < nf {
            return Ok(());
        }
        self.field = 0;
        match SEC {
            0 => self.node_rec(i),
            1 => self.edge_rec(i),
            _ => self.loc_rec(i),
        }
    }

    fn u32_field(&self, v: u64, i: usize, what: &str) -> Result<u32> {
        u32::try_from(v).map_err(|_| self.err(i, format!("{what} {v} does not fit 32 bits")))
    }

    #[inline]
    fn node_rec(&mut self, i: usize) -> Result<()> {
        let p = self.npos;
        let ord = self.nodes;
        let (ty, name, id, self_size, edges) = (
            self.rec[p.ty],
            self.rec[p.name],
            self.rec[p.id],
            self.rec[p.size],
            self.rec[p.edges],
        );
        let detached = p.detached.map(|k| self.rec[k]);
        if ty >= self.n_node_types {
            return Err(self.err(
                i,
                format!(
                    "node {ord} has type index {ty}, out of range of the {} node types",
                    self.n_node_types
                ),
            ));
        }
        let name = self.u32_field(name, i, "a node name index")?;
        let edge_count = self.u32_field(edges, i, "a node edge_count")?;
        let detachedness = match detached {
            Some(d) => {
                u8::try_from(d).map_err(|_| self.err(i, format!("a detachedness of {d}")))?
            }
            None => 0,
        };
        let h = self.header.as_ref().expect("header before nodes");
        if ord >= h.node_count {
            return Err(self.err(
                i,
                format!(
                    "more nodes than the header's node_count of {}",
                    h.node_count
                ),
            ));
        }
        self.edge_count_sum += edge_count as u64;
        if S::EDGES && self.edge_count_sum > h.edge_count {
            return Err(self.err(
                i,
                format!(
                    "the nodes' edge_count values add up to more than the header's edge_count of {}",
                    h.edge_count
                ),
            ));
        }
        if self.max_node_name.is_none_or(|(m, _)| name > m) {
            self.max_node_name = Some((name, self.base + i as u64));
        }
        let rec = NodeRec {
            ty: ty as u8,
            name,
            id,
            self_size,
            edge_count,
            detachedness,
        };
        self.nodes += 1;
        self.sink.node(&rec);
        Ok(())
    }

    #[inline]
    fn edge_rec(&mut self, i: usize) -> Result<()> {
        let p = self.epos;
        let (ty, name, to) = (self.rec[p.ty], self.rec[p.name], self.rec[p.to]);
        if ty >= self.n_edge_types {
            return Err(self.err(
                i,
                format!(
                    "edge {} has type index {ty}, out of range of the {} edge types",
                    self.edges, self.n_edge_types
                ),
            ));
        }
        let name = self.u32_field(name, i, "an edge name_or_index")?;
        let nfc = self.nfc as u64;
        if !to.is_multiple_of(nfc) || to / nfc >= self.nodes {
            return Err(self.err(
                i,
                format!(
                    "edge {} points at to_node {to}, not the start of one of the {} nodes",
                    self.edges, self.nodes
                ),
            ));
        }
        if self.edges >= self.edge_count_sum {
            return Err(self.err(
                i,
                format!(
                    "more edges than the nodes' edge_count values add up to ({})",
                    self.edge_count_sum
                ),
            ));
        }
        if self.edge_named[ty as usize] && self.max_edge_name.is_none_or(|(m, _)| name > m) {
            self.max_edge_name = Some((name, self.base + i as u64));
        }
        self.edges += 1;
        self.sink.edge(ty as u8, name, (to / nfc) as u32);
        Ok(())
    }

    fn loc_rec(&mut self, i: usize) -> Result<()> {
        let p = self.lpos.expect("checked at the section's start");
        let r = &self.rec;
        let nfc = self.nfc as u64;
        let node_count = self.header.as_ref().map_or(0, |h| h.node_count);
        let obj = r[p.node];
        if !obj.is_multiple_of(nfc) || obj / nfc >= node_count {
            return Err(self.err(
                i,
                format!("a location's object_index {obj} is not the start of a node"),
            ));
        }
        let loc = Location {
            node: (obj / nfc) as u32,
            script_id: self.u32_field(r[p.script], i, "a script_id")?,
            line: self.u32_field(r[p.line], i, "a line")?,
            column: self.u32_field(r[p.col], i, "a column")?,
        };
        self.sink.location(loc);
        Ok(())
    }

    fn end_nums<const SEC: u8>(&mut self, i: usize) -> Result<()> {
        let at = i - 1;
        if self.field != 0 {
            let nf = match SEC {
                0 => self.nfc,
                1 => self.efc,
                _ => self.lfc,
            };
            return Err(self.err(
                at,
                format!(
                    "the array ends inside a record ({} values past the last whole record of {nf} fields)",
                    self.field
                ),
            ));
        }
        let (node_count, edge_count) = {
            let h = self.header.as_ref().expect("header before arrays");
            (h.node_count, h.edge_count)
        };
        match SEC {
            0 => {
                if self.nodes != node_count {
                    return Err(self.err(
                        at,
                        format!(
                            "{} nodes, but the header's node_count is {node_count}",
                            self.nodes
                        ),
                    ));
                }
                self.seen[1] = true;
                self.sink.nodes_done();
            }
            1 => {
                if self.edges != edge_count {
                    return Err(self.err(
                        at,
                        format!(
                            "{} edges, but the header's edge_count is {edge_count}",
                            self.edges
                        ),
                    ));
                }
                if self.edges != self.edge_count_sum {
                    return Err(self.err(
                        at,
                        format!(
                            "{} edges, but the nodes' edge_count values add up to {}",
                            self.edges, self.edge_count_sum
                        ),
                    ));
                }
                self.seen[2] = true;
            }
            _ => self.seen[3] = true,
        }
        self.end_member();
        Ok(())
    }

    // ---------------------------------------------------------------- strings

    fn strs(&mut self, buf: &[u8], start: usize) -> Result<usize> {
        let n = buf.len();
        let mut i = start;
        while i < n {
            match self.ex {
                Ex::In => {
                    if self.esc != Esc::None {
                        i = self.escape(buf, i)?;
                        continue;
                    }
                    let rest = &buf[i..];
                    match memchr2(b'"', b'\\', rest) {
                        None => {
                            if self.str_keep {
                                self.flush_high();
                                self.str_buf.extend_from_slice(rest);
                            }
                            return Ok(n);
                        }
                        Some(k) => {
                            if self.str_keep && k > 0 {
                                self.flush_high();
                                self.str_buf.extend_from_slice(&rest[..k]);
                            }
                            i += k + 1;
                            if rest[k] == b'"' {
                                self.string_done(i)?;
                                self.ex = Ex::After;
                            } else {
                                self.esc = Esc::Backslash;
                            }
                        }
                    }
                }
                Ex::After => {
                    let b = buf[i];
                    i += 1;
                    match b {
                        b',' => self.ex = Ex::Value,
                        b']' => {
                            self.strings = self.str_index as u64;
                            self.seen[4] = true;
                            self.end_member();
                            return Ok(i);
                        }
                        _ if is_ws(b) => {}
                        _ => {
                            return Err(self.err(
                                i - 1,
                                format!("expected ',' or ']' after a string, found {}", show(b)),
                            ))
                        }
                    }
                }
                Ex::First | Ex::Value => {
                    let b = buf[i];
                    i += 1;
                    match b {
                        b'"' => {
                            self.ex = Ex::In;
                            self.str_keep = self.sink.wants_string(self.str_index);
                            self.str_buf.clear();
                            self.esc = Esc::None;
                            self.pending_high = None;
                        }
                        b']' if self.ex == Ex::First => {
                            self.strings = 0;
                            self.seen[4] = true;
                            self.end_member();
                            return Ok(i);
                        }
                        _ if is_ws(b) => {}
                        _ => {
                            return Err(
                                self.err(i - 1, format!("expected a string, found {}", show(b)))
                            )
                        }
                    }
                }
            }
        }
        Ok(n)
    }

    fn escape(&mut self, buf: &[u8], mut i: usize) -> Result<usize> {
        while i < buf.len() {
            let b = buf[i];
            match self.esc {
                Esc::Backslash => {
                    let c = match b {
                        b'"' | b'\\' | b'/' => b,
                        b'b' => 8,
                        b'f' => 12,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            self.esc = Esc::Hex { n: 0, v: 0 };
                            i += 1;
                            continue;
                        }
                        _ => return Err(self.err(i, format!("an invalid escape \\{}", show(b)))),
                    };
                    i += 1;
                    self.esc = Esc::None;
                    if self.str_keep {
                        self.flush_high();
                        self.str_buf.push(c);
                    }
                    return Ok(i);
                }
                Esc::Hex { n, v } => {
                    let d = match b {
                        b'0'..=b'9' => b - b'0',
                        b'a'..=b'f' => b - b'a' + 10,
                        b'A'..=b'F' => b - b'A' + 10,
                        _ => {
                            return Err(self.err(i, format!("an invalid \\u escape ({})", show(b))))
                        }
                    };
                    i += 1;
                    let v = (v << 4) | d as u16;
                    if n == 3 {
                        self.esc = Esc::None;
                        if self.str_keep {
                            self.code_unit(v);
                        }
                        return Ok(i);
                    }
                    self.esc = Esc::Hex { n: n + 1, v };
                }
                Esc::None => return Ok(i),
            }
        }
        Ok(i)
    }

    fn push_char(&mut self, c: char) {
        let mut b = [0; 4];
        self.str_buf
            .extend_from_slice(c.encode_utf8(&mut b).as_bytes());
    }

    /// A lone surrogate (JS strings may hold one) becomes U+FFFD, as
    /// `String::from_utf16_lossy` does.
    fn flush_high(&mut self) {
        if self.pending_high.take().is_some() {
            self.push_char('\u{FFFD}');
        }
    }

    fn code_unit(&mut self, u: u16) {
        if let Some(h) = self.pending_high.take() {
            if (0xDC00..0xE000).contains(&u) {
                let c = 0x10000 + (((h as u32) - 0xD800) << 10) + (u as u32 - 0xDC00);
                self.push_char(char::from_u32(c).unwrap_or('\u{FFFD}'));
                return;
            }
            self.push_char('\u{FFFD}');
        }
        if (0xD800..0xDC00).contains(&u) {
            self.pending_high = Some(u);
        } else {
            self.push_char(char::from_u32(u as u32).unwrap_or('\u{FFFD}'));
        }
    }

    fn string_done(&mut self, i: usize) -> Result<()> {
        if self.str_keep {
            self.flush_high();
            let s = std::str::from_utf8(&self.str_buf)
                .map_err(|e| self.err(i - 1, format!("a string that is not UTF-8 ({e})")))?;
            self.sink.string(self.str_index, s);
        }
        self.str_index = self
            .str_index
            .checked_add(1)
            .ok_or_else(|| self.err(i, "more than 4,294,967,295 strings"))?;
        Ok(())
    }

    // ---------------------------------------------------------------- skipping

    /// Skips one JSON value of a member the reader does not use, checking brackets and
    /// strings (scalars only for their byte set).
    fn skip(&mut self, buf: &[u8], start: usize) -> Result<usize> {
        let n = buf.len();
        let mut i = start;
        while i < n {
            if self.skip_in_str {
                if self.skip_esc {
                    self.skip_esc = false;
                    i += 1;
                    continue;
                }
                match memchr2(b'"', b'\\', &buf[i..]) {
                    None => return Ok(n),
                    Some(k) => {
                        i += k + 1;
                        if buf[i - 1] == b'\\' {
                            self.skip_esc = true;
                        } else {
                            self.skip_in_str = false;
                            if self.skip_stack.is_empty() {
                                self.end_member();
                                return Ok(i);
                            }
                        }
                    }
                }
                continue;
            }
            let b = buf[i];
            match b {
                b'{' | b'[' => {
                    if self.skip_scalar && self.skip_stack.is_empty() {
                        return Err(self.err(i, format!("unexpected {}", show(b))));
                    }
                    if self.skip_stack.len() >= MAX_SKIP_DEPTH {
                        return Err(self.err(i, "nesting deeper than 65,536 levels"));
                    }
                    self.skip_stack.push(b);
                }
                b'}' | b']' => match self.skip_stack.pop() {
                    None if self.skip_scalar => {
                        self.end_member();
                        return Ok(i);
                    }
                    Some(o) if (o == b'{') == (b == b'}') => {
                        if self.skip_stack.is_empty() {
                            self.end_member();
                            return Ok(i + 1);
                        }
                    }
                    _ => return Err(self.err(i, format!("unbalanced {}", show(b)))),
                },
                b'"' => self.skip_in_str = true,
                b',' | b' ' | b'\n' | b'\r' | b'\t' | b':' => {
                    if self.skip_stack.is_empty() {
                        if self.skip_scalar && b != b':' {
                            self.end_member();
                            return Ok(i);
                        }
                        if !is_ws(b) {
                            return Err(self.err(i, format!("unexpected {}", show(b))));
                        }
                    }
                }
                b'0'..=b'9' | b'-' | b'+' | b'.' | b'a'..=b'z' | b'E' => {
                    if self.skip_stack.is_empty() {
                        self.skip_scalar = true;
                    }
                }
                _ => return Err(self.err(i, format!("unexpected {}", show(b)))),
            }
            i += 1;
        }
        Ok(n)
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

fn show(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// The error for malformed input at `offset` (of the uncompressed stream) in `sec`.
pub(crate) fn invalid(sec: &str, offset: u64, what: impl std::fmt::Display) -> Error {
    Error::new(
        Code::AnalysisInvalidSnapshot,
        format!(
            "not a valid heap snapshot: {what} (section {sec}, at byte {offset} of the uncompressed JSON)"
        ),
    )
}
