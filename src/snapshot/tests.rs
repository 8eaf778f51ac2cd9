//! Tests of the reader and the streaming histogram: synthetic snapshots split at every
//! byte, every malformed case, a bounded-time fuzz, and real snapshots written by a
//! `node` child compared with an independent serde_json parse of the same file.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::histogram::{ClassHistogram, HistogramBuilder};
use super::parse::Parser;
use super::reader::{self, Build};
use super::*;
use crate::error::{Code, Error};

// ------------------------------------------------------------------ helpers

/// Node 20's node fields.
const NODE20: &[&str] = &[
    "type",
    "name",
    "id",
    "self_size",
    "edge_count",
    "trace_node_id",
    "detachedness",
];

/// (type, name, id, self_size, edge_count, trace_node_id, detachedness).
const NODES: &[[u64; 7]] = &[
    [9, 1, 1, 0, 2, 0, 0],
    [9, 2, 3, 0, 1, 0, 0],
    [3, 3, 5, 32, 2, 7, 2],
    [2, 5, 7, 24, 0, 0, 1],
];
/// (type, name_or_index, target ordinal).
const EDGES: &[[u64; 3]] = &[[1, 1, 1], [5, 4, 2], [1, 0, 2], [2, 4, 3], [3, 6, 0]];
const STRINGS: &[&str] = &[
    r#""<dummy>""#,
    r#""""#,
    r#""(GC roots)""#,
    r#""Foo""#,
    r#""bar""#,
    r#""esc\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 \u20ac""#,
    r#""x""#,
];
const DECODED5: &str = "esc\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{1F600} \u{20ac}";

/// A synthetic snapshot in V8's layout with the given node fields; `extra` adds the
/// trace sections and an unknown member of every JSON shape between edges and strings.
fn synthetic(node_fields: &[&str], extra: bool) -> String {
    let nfc = node_fields.len() as u64;
    let idx = |f: &str| NODE20.iter().position(|x| *x == f).unwrap();
    let q = |v: &[&str]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut nodes = Vec::new();
    for n in NODES {
        let rec: Vec<String> = node_fields.iter().map(|f| n[idx(f)].to_string()).collect();
        nodes.push(rec.join(","));
    }
    let edges: Vec<String> = EDGES
        .iter()
        .map(|e| format!("{},{},{}", e[0], e[1], e[2] * nfc))
        .collect();
    let extra_members = if extra {
        r#""trace_function_infos":[],"trace_tree":[[1,2,[3,[]]]],"samples":[],"future":{"a":[1,{"b":"]}\"\\"}],"c":-1.5e3,"d":true,"e":null},"scalar":12,"#
    } else {
        ""
    };
    format!(
        concat!(
            r#"{{"snapshot":{{"meta":{{"node_fields":[{}],"#,
            r#""node_types":[["hidden","array","string","object","code","closure","regexp","number","native","synthetic","concatenated string","sliced string","symbol","bigint","object shape"],"string","number"],"#,
            r#""edge_fields":["type","name_or_index","to_node"],"#,
            r#""edge_types":[["context","element","property","internal","hidden","shortcut","weak"],"string_or_number","node"],"#,
            r#""location_fields":["object_index","script_id","line","column"]}},"#,
            r#""node_count":{},"edge_count":{},"trace_function_count":0}},"#,
            "\n\"nodes\":[{}],\n\"edges\":[{}],\n{}\"locations\":[{},3,10,4],\n\"strings\":[{}]}}"
        ),
        q(node_fields),
        NODES.len(),
        EDGES.len(),
        nodes.join("\n,"),
        edges.join("\n,"),
        extra_members,
        2 * nfc,
        STRINGS.join(",\n"),
    )
}

/// A larger synthetic snapshot (`k` object nodes in a ring) so the tokenizer's
/// whole-record fast path runs.
fn synthetic_ring(k: usize) -> String {
    let j = synthetic(NODE20, false);
    let nodes: Vec<String> = (0..k)
        .map(|i| format!("3,3,{},{},1,0,0", 2 * i + 1, 16 + i % 7))
        .collect();
    let edges: Vec<String> = (0..k)
        .map(|i| format!("{},{},{}", 2 + (i % 2), 4 + (i % 2), ((i + 1) % k) * 7))
        .collect();
    let a = j.find("\n\"nodes\"").unwrap();
    let b = j.find("\n\"locations\"").unwrap();
    format!(
        "{}\n\"nodes\":[{}],\n\"edges\":[{}],{}",
        &j[..a],
        nodes.join("\n,"),
        edges.join(","),
        &j[b..]
    )
    .replacen("\"node_count\":4", &format!("\"node_count\":{k}"), 1)
    .replacen("\"edge_count\":5", &format!("\"edge_count\":{k}"), 1)
}

fn code_of<T: std::fmt::Debug>(r: crate::error::Result<T>) -> Error {
    r.expect_err("expected an error")
}

/// Parse `data` fed in chunks whose sizes `next` chooses.
fn parse_split(data: &[u8], mut next: impl FnMut() -> usize) -> crate::error::Result<HeapSnapshot> {
    let mut p = Parser::new(Build::new(Some(data.len() as u64)));
    let mut i = 0;
    while i < data.len() {
        let k = next().clamp(1, data.len() - i);
        p.feed(&data[i..i + k])?;
        i += k;
    }
    Ok(p.finish()?.finish())
}

fn read_bytes(data: &[u8]) -> crate::error::Result<HeapSnapshot> {
    reader::read(data, Some(data.len() as u64), &Control::new())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn assert_invalid(r: crate::error::Result<impl std::fmt::Debug>, section: &str) -> String {
    let e = code_of(r);
    assert_eq!(e.code, Code::AnalysisInvalidSnapshot, "{}", e.message);
    assert!(
        e.message.contains(&format!("section {section},")),
        "want section {section}: {}",
        e.message
    );
    assert!(
        e.message.contains("of the uncompressed JSON"),
        "{}",
        e.message
    );
    e.message
}

/// The invariants every successfully read snapshot must hold (fuzz).
fn check_invariants(s: &HeapSnapshot) {
    let n = s.node_count();
    assert!(n >= 1);
    assert_eq!(s.node_name.len(), n);
    assert_eq!(s.node_id.len(), n);
    assert_eq!(s.self_size.len(), n);
    assert_eq!(s.first_edge.len(), n + 1);
    assert_eq!(*s.first_edge.last().unwrap() as usize, s.edge_count());
    assert!(s.first_edge.windows(2).all(|w| w[0] <= w[1]));
    assert!(s
        .node_type
        .iter()
        .all(|&t| (t as usize) < s.node_types.len()));
    assert!(s.node_name.iter().all(|&x| (x as usize) < s.strings.len()));
    assert!(s
        .edge_type
        .iter()
        .all(|&t| (t as usize) < s.edge_types.len()));
    assert!(s.edge_to.iter().all(|&t| (t as usize) < n));
    for e in 0..s.edge_count() {
        let t = &s.edge_types[s.edge_type[e] as usize];
        if t != "element" && t != "hidden" {
            assert!((s.edge_name[e] as usize) < s.strings.len());
        }
    }
    assert!(s.locations.iter().all(|l| (l.node as usize) < n));
    if let Some(d) = &s.detachedness {
        assert_eq!(d.len(), n);
    }
}

// ------------------------------------------------------------------ synthetic

fn check_synthetic(s: &HeapSnapshot, detached: bool) {
    check_invariants(s);
    assert_eq!(s.node_count(), 4);
    assert_eq!(s.edge_count(), 5);
    assert_eq!(s.node_types.len(), 15);
    assert_eq!(s.edge_types[5], "shortcut");
    for (k, n) in NODES.iter().enumerate() {
        assert_eq!(s.node_type[k] as u64, n[0]);
        assert_eq!(s.node_name[k] as u64, n[1]);
        assert_eq!(s.node_id.get(k), n[2]);
        assert_eq!(s.self_size.get(k), n[3]);
        assert_eq!(s.edges(k as u32).len() as u64, n[4]);
    }
    assert_eq!(
        s.detachedness.as_deref(),
        if detached {
            Some(&[0u8, 0, 2, 1][..])
        } else {
            None
        }
    );
    for (k, e) in EDGES.iter().enumerate() {
        assert_eq!(
            [
                s.edge_type[k] as u64,
                s.edge_name[k] as u64,
                s.edge_to[k] as u64
            ],
            *e
        );
    }
    assert_eq!(s.first_edge, vec![0, 2, 3, 5, 5]);
    assert_eq!(s.strings.len(), STRINGS.len());
    assert_eq!(s.strings.get(0), "<dummy>");
    assert_eq!(s.strings.get(1), "");
    assert_eq!(s.strings.get(5), DECODED5);
    assert_eq!(s.name(2), "Foo");
    assert_eq!(s.class_name(2), "Foo");
    assert_eq!(s.class_name(3), "(string)");
    assert_eq!(
        s.locations,
        vec![Location {
            node: 2,
            script_id: 3,
            line: 10,
            column: 4
        }]
    );
}

#[test]
fn reads_a_synthetic_snapshot_with_node20_fields_and_unknown_members() {
    let j = synthetic(NODE20, true);
    check_synthetic(&read_bytes(j.as_bytes()).unwrap(), true);
    // gzip is recognised by content: the same bytes compressed read the same.
    check_synthetic(&read_bytes(&gzip(j.as_bytes())).unwrap(), true);
}

#[test]
fn fields_are_found_through_meta_in_any_order_and_number() {
    // Newer V8: no trace_node_id; a V8 without detachedness; a shuffled order.
    let newer = [
        "type",
        "name",
        "id",
        "self_size",
        "edge_count",
        "detachedness",
    ];
    check_synthetic(
        &read_bytes(synthetic(&newer, false).as_bytes()).unwrap(),
        true,
    );
    let old = ["type", "name", "id", "self_size", "edge_count"];
    check_synthetic(
        &read_bytes(synthetic(&old, true).as_bytes()).unwrap(),
        false,
    );
    let shuffled = [
        "self_size",
        "trace_node_id",
        "edge_count",
        "name",
        "type",
        "id",
    ];
    check_synthetic(
        &read_bytes(synthetic(&shuffled, true).as_bytes()).unwrap(),
        false,
    );
}

#[test]
fn every_chunk_split_gives_the_same_snapshot() {
    let j = synthetic(NODE20, true);
    let d = j.as_bytes();
    for size in 1..=d.len().min(64) {
        check_synthetic(&parse_split(d, || size).unwrap(), true);
    }
    // Every single split point (two chunks), so each byte is once a chunk's last.
    for cut in 1..d.len() {
        let mut first = true;
        let s = parse_split(d, || {
            if std::mem::take(&mut first) {
                cut
            } else {
                usize::MAX
            }
        })
        .unwrap();
        check_synthetic(&s, true);
    }
}

#[test]
fn fast_path_and_state_machine_agree_at_every_split() {
    let j = synthetic_ring(40);
    let d = j.as_bytes();
    let whole = parse_split(d, || usize::MAX).unwrap();
    check_invariants(&whole);
    assert_eq!(whole.node_count(), 40);
    assert_eq!(whole.edge_to[39], 0);
    assert_eq!(whole.edge_type[1], 3);
    assert_eq!(whole.self_size.get(10), 16 + 3);
    for cut in 1..d.len() {
        let mut first = true;
        let s = parse_split(d, || {
            if std::mem::take(&mut first) {
                cut
            } else {
                usize::MAX
            }
        })
        .unwrap();
        assert_eq!(
            (
                &s.node_id,
                &s.self_size,
                &s.first_edge,
                &s.edge_to,
                &s.edge_type
            ),
            (
                &whole.node_id,
                &whole.self_size,
                &whole.first_edge,
                &whole.edge_to,
                &whole.edge_type
            ),
            "cut {cut}"
        );
    }
    // An error inside a record the fast path reads is still found, at its offset.
    let m = assert_invalid(
        parse_split(j.replacen(",16,1,0,0", ",16,1,0,999", 1).as_bytes(), || {
            usize::MAX
        }),
        "nodes",
    );
    assert!(m.contains("detachedness of 999"), "{m}");
    let m = assert_invalid(
        parse_split(j.replacen("3,3,1,", "20,3,1,", 1).as_bytes(), || usize::MAX),
        "nodes",
    );
    assert!(m.contains("type index 20"), "{m}");
}

#[test]
fn whitespace_between_tokens_is_accepted() {
    let j = synthetic(NODE20, true)
        .replace(',', " ,\t")
        .replace('[', "[ \r\n")
        .replace(']', " ]");
    // The replacements also touched string contents; compare structure only.
    let s = read_bytes(j.as_bytes()).unwrap();
    check_invariants(&s);
    assert_eq!(s.node_count(), 4);
    assert_eq!(s.first_edge, vec![0, 2, 3, 5, 5]);
}

#[test]
fn surrogates_decode_and_lone_ones_become_replacement_characters() {
    let j =
        synthetic(NODE20, false).replace(r#""x""#, r#""a\ud800b\udc00c\ud83d\ud83d\ude00\ud800""#);
    let s = read_bytes(j.as_bytes()).unwrap();
    assert_eq!(
        s.strings.get(6),
        "a\u{FFFD}b\u{FFFD}c\u{FFFD}\u{1F600}\u{FFFD}"
    );
}

// ------------------------------------------------------------------ malformed

#[test]
fn truncation_at_every_byte_is_a_coded_error() {
    let j = synthetic(NODE20, true);
    let d = j.as_bytes();
    let mut sections = std::collections::HashSet::new();
    for cut in 0..d.len() {
        let e = code_of(read_bytes(&d[..cut]));
        assert_eq!(
            e.code,
            Code::AnalysisInvalidSnapshot,
            "cut {cut}: {}",
            e.message
        );
        assert!(
            e.message.contains(&format!("byte {cut} ")),
            "cut {cut}: {}",
            e.message
        );
        let sec = e
            .message
            .split("section ")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        sections.insert(sec.to_string());
    }
    for s in [
        "top level",
        "snapshot header",
        "nodes",
        "edges",
        "locations",
        "strings",
        "skipped member",
    ] {
        assert!(
            sections.contains(s),
            "no truncation reported in {s}: {sections:?}"
        );
    }
}

#[test]
fn truncated_or_corrupt_gzip_is_a_coded_error() {
    let j = synthetic(NODE20, true);
    let gz = gzip(j.as_bytes());
    for cut in 2..gz.len() {
        let e = code_of(read_bytes(&gz[..cut]));
        assert_eq!(
            e.code,
            Code::AnalysisInvalidSnapshot,
            "cut {cut}: {}",
            e.message
        );
    }
    // A flipped byte in the deflate body or the CRC.
    for at in [12, gz.len() / 2, gz.len() - 6] {
        let mut bad = gz.clone();
        bad[at] ^= 0x55;
        let e = code_of(read_bytes(&bad));
        assert_eq!(
            e.code,
            Code::AnalysisInvalidSnapshot,
            "flip {at}: {}",
            e.message
        );
    }
    // gzip magic and then nothing a decoder can use.
    let e = assert_invalid(
        read_bytes(b"\x1f\x8b\x08\x00garbage garbage"),
        "gzip stream",
    );
    assert!(e.contains("gzip"), "{e}");
}

#[test]
fn not_json_and_empty_input_are_coded_errors() {
    assert_invalid(read_bytes(b""), "top level");
    let m = assert_invalid(read_bytes(b"PK\x03\x04 a zip file"), "top level");
    assert!(m.contains("neither gzip nor a JSON heap snapshot"), "{m}");
    assert_invalid(read_bytes(b"[1,2,3]"), "top level");
    assert_invalid(read_bytes(b"{}"), "top level");
    assert_invalid(read_bytes(b"{\"a\":1}"), "top level");
    assert_invalid(read_bytes(b"{\"a\" 1}"), "top level");
    assert_invalid(read_bytes(b"{\"a\":1,}"), "top level");
    assert_invalid(read_bytes(b"{\"a\":[}"), "skipped member");
    assert_invalid(read_bytes(b"{\"a\":#}"), "skipped member");
    assert_invalid(read_bytes(b"{\"a\":1\"x\"}"), "skipped member");
    assert_invalid(read_bytes(b"{\"a\":1[]}"), "skipped member");
    assert_invalid(read_bytes(b"{\"a\":[1]]}"), "top level");
    let j = synthetic(NODE20, true);
    assert_invalid(read_bytes(format!("{j} x").as_bytes()), "top level");
    assert_invalid(read_bytes(format!("{j}{{}}").as_bytes()), "top level");
}

/// Replace `from` (which must occur) in the synthetic snapshot.
fn bad(from: &str, to: &str) -> Vec<u8> {
    let j = synthetic(NODE20, true);
    assert!(j.contains(from), "{from} not in the synthetic snapshot");
    j.replacen(from, to, 1).into_bytes()
}

#[test]
fn wrong_types_are_coded_errors_naming_the_section() {
    assert_invalid(
        read_bytes(&bad("\"nodes\":[9,", "\"nodes\":[\"9\",")),
        "nodes",
    );
    assert_invalid(read_bytes(&bad("\"nodes\":[", "\"nodes\":{")), "nodes");
    assert_invalid(
        read_bytes(&bad("\"nodes\":[9,1", "\"nodes\":[9,-1")),
        "nodes",
    );
    assert_invalid(
        read_bytes(&bad("\"nodes\":[9,1", "\"nodes\":[9,1.5")),
        "nodes",
    );
    assert_invalid(
        read_bytes(&bad("\"nodes\":[9,1", "\"nodes\":[9,1e3")),
        "nodes",
    );
    assert_invalid(
        read_bytes(&bad("\"nodes\":[9,1", "\"nodes\":[9,,1")),
        "nodes",
    );
    assert_invalid(
        read_bytes(&bad("\"nodes\":[9,1", "\"nodes\":[9 1")),
        "nodes",
    );
    assert_invalid(
        read_bytes(&bad(
            "\"nodes\":[9,1",
            "\"nodes\":[9,99999999999999999999999",
        )),
        "nodes",
    );
    assert_invalid(
        read_bytes(&bad("\"edges\":[1,", "\"edges\":[null,")),
        "edges",
    );
    assert_invalid(
        read_bytes(&bad("\"strings\":[\"<dummy>\"", "\"strings\":[7")),
        "strings",
    );
    assert_invalid(
        read_bytes(&bad("\"strings\":[", "\"strings\":{")),
        "strings",
    );
    assert_invalid(read_bytes(&bad("\"Foo\"", "\"F\\qoo\"")), "strings");
    assert_invalid(read_bytes(&bad("\\u00e9", "\\u00g9")), "strings");
    assert_invalid(
        read_bytes(&bad("\"locations\":[", "\"locations\":[\"a\",")),
        "locations",
    );
    assert_invalid(
        read_bytes(&bad("{\"snapshot\":{", "{\"snapshot\":[")),
        "snapshot header",
    );
    assert_invalid(
        read_bytes(&bad("\"node_count\":4", "\"node_count\":\"4\"")),
        "snapshot header",
    );
    assert_invalid(
        read_bytes(&bad("\"node_fields\":[", "\"node_fields\":[1,")),
        "snapshot header",
    );
    assert_invalid(
        read_bytes(&bad("\"meta\":", "\"mota\":")),
        "snapshot header",
    );
    assert_invalid(
        read_bytes(&bad("\"self_size\",", "\"size\",")),
        "snapshot header",
    );
    assert_invalid(read_bytes(&bad("\"to_node\"", "\"to\"")), "snapshot header");
    assert_invalid(
        read_bytes(&bad("\"type\",\"name\"", "\"type\",\"type\",\"name\"")),
        "snapshot header",
    );
    assert_invalid(
        read_bytes(&bad("\"node_count\":4,", "\"node_count\":4,,")),
        "snapshot header",
    );
    // Invalid UTF-8 inside a string.
    let mut b = bad("\"Foo\"", "\"F\u{e9}o\"");
    let at = b.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
    b[at + 1] = 0x28;
    assert_invalid(read_bytes(&b), "strings");
}

#[test]
fn counts_indices_and_order_that_disagree_are_coded_errors() {
    let m = assert_invalid(
        read_bytes(&bad("\"node_count\":4", "\"node_count\":5")),
        "nodes",
    );
    assert!(
        m.contains("4 nodes, but the header's node_count is 5"),
        "{m}"
    );
    let m = assert_invalid(
        read_bytes(&bad("\"node_count\":4", "\"node_count\":3")),
        "nodes",
    );
    assert!(m.contains("more nodes than"), "{m}");
    assert_invalid(
        read_bytes(&bad("\"edge_count\":5", "\"edge_count\":6")),
        "edges",
    );
    assert_invalid(
        read_bytes(&bad("\"edge_count\":5", "\"edge_count\":4")),
        "nodes",
    );
    // A node record cut short (one value fewer).
    assert_invalid(
        read_bytes(&bad("\n,2,5,7,24,0,0,1]", "\n,2,5,7,24,0,0]")),
        "nodes",
    );
    // Edge targets: beyond the nodes, not a multiple of the field count.
    assert_invalid(
        read_bytes(&bad("\"edges\":[1,1,7", "\"edges\":[1,1,28")),
        "edges",
    );
    assert_invalid(
        read_bytes(&bad("\"edges\":[1,1,7", "\"edges\":[1,1,8")),
        "edges",
    );
    // Type indices.
    let m = assert_invalid(read_bytes(&bad("\"nodes\":[9,", "\"nodes\":[15,")), "nodes");
    assert!(m.contains("type index 15"), "{m}");
    assert_invalid(read_bytes(&bad("\"edges\":[1,", "\"edges\":[7,")), "edges");
    // String indices: a node's name, a named edge's name (the last string is index 6).
    let m = assert_invalid(
        read_bytes(&bad("\"nodes\":[9,1,", "\"nodes\":[9,7,")),
        "nodes",
    );
    assert!(
        m.contains("name index 7 is out of range of the 7 strings"),
        "{m}"
    );
    assert_invalid(read_bytes(&bad(",3,6,0]", ",3,7,0]")), "edges");
    // An element edge's index is not a string index: any value is fine.
    read_bytes(&bad("\"edges\":[1,1,", "\"edges\":[1,4000000,")).unwrap();
    // Locations pointing nowhere.
    assert_invalid(
        read_bytes(&bad("\"locations\":[14,", "\"locations\":[15,")),
        "locations",
    );
    assert_invalid(
        read_bytes(&bad("\"locations\":[14,", "\"locations\":[280,")),
        "locations",
    );
    // Order and duplicates.
    let j = synthetic(NODE20, false);
    let nodes_first = j.replacen("{\"snapshot\":", "{\"nodes\":[],\"snapshot\":", 1);
    assert_invalid(read_bytes(nodes_first.as_bytes()), "nodes");
    let twice = j.replacen("\n\"strings\":", "\n\"nodes\":[],\"strings\":", 1);
    assert_invalid(read_bytes(twice.as_bytes()), "nodes");
    let edges_first = {
        let a = j.find("\n\"nodes\"").unwrap();
        let b = j.find("\n\"edges\"").unwrap();
        let c = j.find("\n\"locations\"").unwrap();
        format!("{}{}{}{}", &j[..a], &j[b..c], &j[a..b], &j[c..])
    };
    assert_invalid(read_bytes(edges_first.as_bytes()), "edges");
    // A snapshot without strings.
    let cut = j.find(",\n\"strings\"").unwrap();
    assert_invalid(
        read_bytes(format!("{}}}", &j[..cut]).as_bytes()),
        "top level",
    );
}

#[test]
fn huge_counts_fail_without_allocating_for_them() {
    // Within 32 bits: the arrays are sized by the file, and the count then disagrees.
    let b = bad("\"node_count\":4", "\"node_count\":4000000000")
        .into_iter()
        .collect::<Vec<u8>>();
    let b =
        String::from_utf8(b)
            .unwrap()
            .replacen("\"edge_count\":5", "\"edge_count\":4000000000", 1);
    let t = Instant::now();
    let m = assert_invalid(read_bytes(b.as_bytes()), "nodes");
    assert!(m.contains("header's node_count is 4000000000"), "{m}");
    assert!(t.elapsed() < Duration::from_secs(5));
    // Same through gzip (a small compressed file can claim a lot).
    assert_invalid(read_bytes(&gzip(b.as_bytes())), "nodes");
    // Beyond 32 bits or beyond any integer: the header is rejected.
    let m = assert_invalid(
        read_bytes(&bad("\"node_count\":4", "\"node_count\":40000000000")),
        "snapshot header",
    );
    assert!(m.contains("beyond"), "{m}");
    assert_invalid(
        read_bytes(&bad("\"edge_count\":5", "\"edge_count\":1e300")),
        "snapshot header",
    );
}

#[test]
fn cancel_and_io_errors_have_their_own_codes() {
    let j = synthetic(NODE20, true);
    let ctl = Control::new();
    ctl.cancel();
    let e = code_of(reader::read(j.as_bytes(), None, &ctl));
    assert_eq!(e.code, Code::AnalysisAborted);
    let e = code_of(reader::read_path(
        Path::new("/nonexistent/x.heapsnapshot"),
        &Control::new(),
    ));
    assert_eq!(e.code, Code::AnalysisReadFailed);
    assert!(
        e.message.contains("/nonexistent/x.heapsnapshot"),
        "{}",
        e.message
    );
    // A directory opens but cannot be read.
    let e = code_of(reader::read_path(Path::new("/"), &Control::new()));
    assert_eq!(e.code, Code::AnalysisReadFailed, "{}", e.message);
}

// ------------------------------------------------------------------ fuzz

/// xorshift64*: a seeded, dependency-free PRNG (also the analysis tests').
pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.below_u64(n as u64) as usize
    }
    pub(crate) fn below_u64(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    const BYTES: &[u8] = b"0123456789,[]{}\":\\-.eu \nabnt\x00\xff\x1f\x8b";
    let mut d = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(d.len());
        match rng.below(7) {
            0 => d[at] = BYTES[rng.below(BYTES.len())],
            1 => d.insert(at, BYTES[rng.below(BYTES.len())]),
            2 => {
                let end = (at + 1 + rng.below(16)).min(d.len());
                d.drain(at..end);
            }
            3 => d.truncate(at),
            4 => {
                let end = (at + 1 + rng.below(32)).min(d.len());
                let span = d[at..end].to_vec();
                let to = rng.below(d.len());
                d.splice(to..to, span);
            }
            5 => d[at] = d[at].wrapping_add(1),
            _ => {
                // A digit run swapped for a big number.
                d.splice(at..at, b"4294967296".iter().copied());
            }
        }
        if d.is_empty() {
            break;
        }
    }
    d
}

#[test]
fn fuzz_mutated_snapshots_never_panic_and_fail_only_with_the_coded_error() {
    let bases: Vec<Vec<u8>> = vec![
        synthetic(NODE20, true).into_bytes(),
        synthetic(&["type", "name", "id", "self_size", "edge_count"], false).into_bytes(),
        synthetic_ring(40).into_bytes(),
    ];
    let mut rng = Rng(0x5eed_1ea6_9e37_79b9);
    let deadline = Instant::now() + Duration::from_secs(2);
    let (mut runs, mut ok) = (0u64, 0u64);
    while Instant::now() < deadline {
        let base = &bases[rng.below(bases.len())];
        let d = mutate(&mut rng, base);
        runs += 1;
        // Small splits cut records; whole buffers take the fast path.
        let split = if rng.below(3) == 0 {
            usize::MAX
        } else {
            1 + rng.below(300)
        };
        let r = parse_split(&d, || split);
        match &r {
            Ok(s) => {
                ok += 1;
                check_invariants(s);
            }
            Err(e) => assert_eq!(e.code, Code::AnalysisInvalidSnapshot, "{}", e.message),
        }
        // The histogram over the same bytes, split at random: coded error or a
        // histogram whose totals are the reader's when the reader accepted the input.
        let mut h = HistogramBuilder::new();
        let mut res = Ok(());
        let mut i = 0;
        while i < d.len() && res.is_ok() {
            let k = (1 + rng.below(64)).min(d.len() - i);
            res = h.push(&d[i..i + k]);
            i += k;
        }
        let hist = res.and_then(|_| h.finish());
        match (&hist, &r) {
            (Err(e), _) => assert_eq!(e.code, Code::AnalysisInvalidSnapshot, "{}", e.message),
            (Ok(h), Ok(s)) => assert_eq!(*h, ClassHistogram::from_snapshot(s)),
            (Ok(_), Err(_)) => {} // the histogram skips edges and locations unchecked
        }
        // Now and then the whole pipeline, compressed.
        if runs % 16 == 0 {
            let gz = if rng.below(2) == 0 {
                gzip(&d)
            } else {
                mutate(&mut rng, &gzip(base))
            };
            match read_bytes(&gz) {
                Ok(s) => check_invariants(&s),
                Err(e) => assert_eq!(e.code, Code::AnalysisInvalidSnapshot, "{}", e.message),
            }
        }
    }
    eprintln!("fuzz: {runs} mutated snapshots, {ok} still valid");
    assert!(runs > 100, "only {runs} runs in 2 s");
}

// ------------------------------------------------------------------ real snapshots

/// Write a snapshot from a real `node` child holding `count` instances of a class of its
/// own. Without `node` on PATH this fails — a passing test that checked nothing would hide
/// it (cargo shows no stderr of passing tests) — unless `LEAKGUARD_NO_NODE=1` says the
/// machine has none on purpose; then `None`, and the caller returns.
fn node_snapshot(dir: &Path, count: usize) -> Option<PathBuf> {
    if Command::new("node").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("LEAKGUARD_NO_NODE").is_some_and(|v| v == "1"),
            "`node` is not on PATH; the real-snapshot tests need it (LEAKGUARD_NO_NODE=1 skips them)"
        );
        eprintln!("SKIPPED (LEAKGUARD_NO_NODE=1): the real-snapshot tests");
        return None;
    }
    let path = dir.join("probe.heapsnapshot");
    let script = r#"
        class LeakguardProbe { constructor (i) { this.i = i; this.label = 'probe ' + i } }
        globalThis.keep = Array.from({ length: Number(process.argv[2]) }, (_, i) => new LeakguardProbe(i))
        globalThis.odd = 'quote " backslash \\ newline \n tab \t é € 😀 \u0001'
        globalThis.m = new Map([[1, { a: 1 }], ['k', () => 2]])
        require('v8').writeHeapSnapshot(process.argv[1])
    "#;
    let out = Command::new("node")
        .args(["-e", script, path.to_str().unwrap(), &count.to_string()])
        .output()
        .expect("running node");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(path)
}

/// An independent full parse: the whole file through serde_json.
struct Independent {
    nodes: Vec<u64>,
    edges: Vec<u64>,
    strings: Vec<String>,
    locations: Vec<u64>,
    node_fields: Vec<String>,
    edge_fields: Vec<String>,
    node_types: Vec<String>,
    edge_types: Vec<String>,
}

fn independent(path: &Path) -> Independent {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let nums = |k: &str| -> Vec<u64> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect()
    };
    let strs = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let meta = &v["snapshot"]["meta"];
    Independent {
        nodes: nums("nodes"),
        edges: nums("edges"),
        locations: nums("locations"),
        strings: strs(&v["strings"]),
        node_fields: strs(&meta["node_fields"]),
        edge_fields: strs(&meta["edge_fields"]),
        node_types: strs(&meta["node_types"][0]),
        edge_types: strs(&meta["edge_types"][0]),
    }
}

fn compare_with_independent(s: &HeapSnapshot, ind: &Independent) {
    let nf = ind.node_fields.len();
    let ef = ind.edge_fields.len();
    let f = |name: &str| ind.node_fields.iter().position(|x| x == name).unwrap();
    let g = |name: &str| ind.edge_fields.iter().position(|x| x == name).unwrap();
    let n = ind.nodes.len() / nf;
    assert_eq!(s.node_count(), n);
    assert_eq!(s.edge_count(), ind.edges.len() / ef);
    assert_eq!(s.node_types, ind.node_types);
    assert_eq!(s.edge_types, ind.edge_types);
    let mut first = 0u64;
    for k in 0..n {
        let r = &ind.nodes[k * nf..(k + 1) * nf];
        assert_eq!(s.node_type[k] as u64, r[f("type")], "node {k} type");
        assert_eq!(s.node_name[k] as u64, r[f("name")], "node {k} name");
        assert_eq!(s.node_id.get(k), r[f("id")], "node {k} id");
        assert_eq!(s.self_size.get(k), r[f("self_size")], "node {k} self_size");
        assert_eq!(s.first_edge[k] as u64, first, "node {k} first edge");
        first += r[f("edge_count")];
        if let Some(d) = &s.detachedness {
            assert_eq!(d[k] as u64, r[f("detachedness")], "node {k} detachedness");
        }
    }
    assert_eq!(s.first_edge[n] as u64, first);
    for k in 0..s.edge_count() {
        let r = &ind.edges[k * ef..(k + 1) * ef];
        assert_eq!(s.edge_type[k] as u64, r[g("type")], "edge {k} type");
        assert_eq!(
            s.edge_name[k] as u64,
            r[g("name_or_index")],
            "edge {k} name"
        );
        assert_eq!(
            s.edge_to[k] as u64 * nf as u64,
            r[g("to_node")],
            "edge {k} to"
        );
    }
    assert_eq!(s.strings.len(), ind.strings.len());
    for (k, want) in ind.strings.iter().enumerate() {
        assert_eq!(s.strings.get(k as u32), want, "string {k}");
    }
    assert_eq!(s.locations.len(), ind.locations.len() / 4);
    for (k, l) in s.locations.iter().enumerate() {
        let r = &ind.locations[k * 4..k * 4 + 4];
        assert_eq!(
            [
                l.node as u64 * nf as u64,
                l.script_id as u64,
                l.line as u64,
                l.column as u64
            ],
            [r[0], r[1], r[2], r[3]],
            "location {k}"
        );
    }
}

/// Per (type, class) count and self size, counted from the independent parse.
fn independent_histogram(ind: &Independent) -> ClassHistogram {
    let nf = ind.node_fields.len();
    let f = |name: &str| ind.node_fields.iter().position(|x| x == name).unwrap();
    let mut m: HashMap<(String, String), (u64, u64)> = HashMap::new();
    let (mut count, mut total) = (0, 0);
    for r in ind.nodes.chunks(nf) {
        let t = &ind.node_types[r[f("type")] as usize];
        let name = &ind.strings[r[f("name")] as usize];
        let class = match t.as_str() {
            "object" | "native" => name.clone(),
            "hidden" => "(system)".into(),
            "code" => "(compiled code)".into(),
            other => format!("({other})"),
        };
        let e = m.entry((t.clone(), class)).or_default();
        e.0 += 1;
        e.1 += r[f("self_size")];
        count += 1;
        total += r[f("self_size")];
    }
    let mut classes: Vec<_> = m
        .into_iter()
        .map(
            |((type_name, name), (count, self_size))| histogram::ClassCount {
                name,
                type_name,
                count,
                self_size,
            },
        )
        .collect();
    classes.sort_by(|a, b| {
        (b.self_size, b.count, &a.name, &a.type_name).cmp(&(
            a.self_size,
            a.count,
            &b.name,
            &b.type_name,
        ))
    });
    ClassHistogram {
        node_count: count,
        total_self_size: total,
        classes,
    }
}

#[test]
fn real_snapshot_equals_an_independent_parse_plain_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let Some(path) = node_snapshot(dir.path(), 1234) else {
        return;
    };
    let ind = independent(&path);
    assert!(ind.node_fields.len() >= 5);
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let c2 = calls.clone();
    let ctl = Control::with_progress(move |p, d, t| c2.lock().unwrap().push((p.to_string(), d, t)));
    let s = reader::read_path(&path, &ctl).unwrap();
    check_invariants(&s);
    compare_with_independent(&s, &ind);
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(
        *calls.lock().unwrap().last().unwrap(),
        ("read".to_string(), size, size)
    );
    // The strings survived escaping: the odd global is there verbatim — except its
    // emoji: V8's serializer writes a code point beyond U+FFFF as `\u` and its low 16
    // bits (U+1F600 as `\uf600`), so that is what the file holds.
    let odd = "quote \" backslash \\ newline \n tab \t é € \u{f600} \u{1}";
    assert!(ind.strings.iter().any(|x| x == odd));
    assert!((0..s.strings.len() as u32).any(|i| s.strings.get(i) == odd));

    let gz = dir.path().join("probe.heapsnapshot.gz");
    std::fs::write(&gz, gzip(&std::fs::read(&path).unwrap())).unwrap();
    let z = reader::read_path(&gz, &Control::new()).unwrap();
    compare_with_independent(&z, &ind);
    // Named like neither: recognised by content.
    let odd_name = dir.path().join("snapshot.bin");
    std::fs::rename(&gz, &odd_name).unwrap();
    compare_with_independent(
        &reader::read_path(&odd_name, &Control::new()).unwrap(),
        &ind,
    );
}

#[test]
fn real_snapshot_histogram_equals_an_independent_count_at_any_split() {
    let dir = tempfile::tempdir().unwrap();
    let Some(path) = node_snapshot(dir.path(), 1234) else {
        return;
    };
    let data = std::fs::read(&path).unwrap();
    let want = independent_histogram(&independent(&path));
    let probe = want
        .classes
        .iter()
        .find(|c| c.name == "LeakguardProbe")
        .unwrap();
    assert_eq!((probe.count, probe.type_name.as_str()), (1234, "object"));

    let stream = |sizes: &mut dyn FnMut() -> usize| {
        let mut h = HistogramBuilder::new();
        let mut i = 0;
        while i < data.len() {
            let k = sizes().clamp(1, data.len() - i);
            h.push(&data[i..i + k]).unwrap();
            i += k;
        }
        h.finish().unwrap()
    };
    for size in [1usize, 7, 4096, 1 << 20] {
        assert_eq!(stream(&mut || size), want, "chunks of {size}");
    }
    let mut rng = Rng(42);
    assert_eq!(stream(&mut || 1 + rng.below(300)), want, "random splits");
    // The top classes by size and by count.
    let top = want.top(5);
    assert_eq!(top.node_count, want.node_count);
    assert!(top.classes.len() >= 5 && top.classes.len() <= 10);
    assert_eq!(top.classes[..5], want.classes[..5]);
    let most = want
        .classes
        .iter()
        .max_by_key(|c| (c.count, c.self_size))
        .unwrap();
    assert!(top.classes.contains(most));
    assert!(top
        .classes
        .windows(2)
        .all(|w| w[0].self_size >= w[1].self_size));
    // The analysis path agrees exactly.
    let s = reader::read_path(&path, &Control::new()).unwrap();
    assert_eq!(ClassHistogram::from_snapshot(&s), want);
}

#[test]
fn truncated_stream_gives_no_histogram() {
    let dir = tempfile::tempdir().unwrap();
    let Some(path) = node_snapshot(dir.path(), 10) else {
        return;
    };
    let data = std::fs::read(&path).unwrap();
    for cut in [
        0,
        1,
        100,
        data.len() / 3,
        data.len() / 2,
        data.len() - 2,
        data.len() - 1,
    ] {
        let mut h = HistogramBuilder::new();
        h.push(&data[..cut]).unwrap();
        let e = h.finish().unwrap_err();
        assert_eq!(e.code, Code::AnalysisInvalidSnapshot, "{}", e.message);
    }
    // Garbage mid-stream fails at push and keeps failing.
    let mid = data.windows(9).position(|w| w == b"\"nodes\":[").unwrap() + 100;
    let mut h = HistogramBuilder::new();
    h.push(&data[..mid]).unwrap();
    assert!(h.push(b"}}}}").is_err());
    assert!(h.push(&data[mid..]).is_err());
    assert!(h.finish().is_err());
}

#[test]
fn synthetic_histogram_merges_by_class_and_sorts_by_self_size() {
    let j = synthetic(NODE20, true);
    let mut h = HistogramBuilder::new();
    for b in j.as_bytes() {
        h.push(std::slice::from_ref(b)).unwrap();
    }
    let hist = h.finish().unwrap();
    assert_eq!(hist.node_count, 4);
    assert_eq!(hist.total_self_size, 56);
    let got: Vec<_> = hist
        .classes
        .iter()
        .map(|c| (c.name.as_str(), c.type_name.as_str(), c.count, c.self_size))
        .collect();
    assert_eq!(
        got,
        vec![
            ("Foo", "object", 1, 32),
            ("(string)", "string", 1, 24),
            ("(synthetic)", "synthetic", 2, 0),
        ]
    );
    assert_eq!(
        hist,
        ClassHistogram::from_snapshot(&read_bytes(j.as_bytes()).unwrap())
    );
}

/// Hands out at most 7 bytes per read, like a slow pipe.
struct Trickle<'a>(&'a [u8], usize);
impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.1 = self.1 % 7 + 1;
        let k = self.1.min(buf.len()).min(self.0.len());
        buf[..k].copy_from_slice(&self.0[..k]);
        self.0 = &self.0[k..];
        Ok(k)
    }
}

#[test]
fn short_reads_and_cancel_mid_read_on_a_real_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let Some(path) = node_snapshot(dir.path(), 1234) else {
        return;
    };
    let data = std::fs::read(&path).unwrap();
    assert!(
        data.len() > 3 * reader::CHUNK,
        "a snapshot of several buffers"
    );
    let ind = independent(&path);
    let gz = gzip(&data);
    // A reader that returns a few bytes at a time, plain and gzip, size unknown.
    compare_with_independent(
        &reader::read(Trickle(&data, 0), None, &Control::new()).unwrap(),
        &ind,
    );
    compare_with_independent(
        &reader::read(Trickle(&gz, 0), None, &Control::new()).unwrap(),
        &ind,
    );
    // Cancelled from the progress callback after the first buffer: aborted, not invalid.
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let c2 = cancel.clone();
    let ctl = Control {
        cancel: cancel.clone(),
        progress: Some(std::sync::Arc::new(move |_: &str, _: u64, _: u64| {
            c2.store(true, std::sync::atomic::Ordering::Relaxed)
        })),
    };
    let e = code_of(reader::read_path(&path, &ctl));
    assert_eq!(e.code, Code::AnalysisAborted, "{}", e.message);
}

// ------------------------------------------------------------------ 64-bit values

#[test]
fn u64_column_round_trips_every_width() {
    let values = [
        0,
        1,
        u32::MAX as u64 - 1,
        u32::MAX as u64,
        7,
        u32::MAX as u64 + 1,
        u64::MAX,
        42,
        u64::MAX - 1,
        (u32::MAX as u64) << 8,
    ];
    let mut c = U64Column::new();
    c.reserve_exact(values.len());
    for &v in &values {
        c.push(v);
    }
    c.shrink_to_fit();
    assert_eq!(c.len(), values.len());
    assert!(!c.is_empty());
    assert!(c.any_wide());
    for (i, &v) in values.iter().enumerate() {
        assert_eq!(c.get(i), v, "value {i}");
    }
    assert_eq!(c.iter().collect::<Vec<_>>(), values);
    assert_eq!(c.to_vec(), values);
    assert_eq!(
        c.iter().map(u128::from).sum::<u128>(),
        values.iter().map(|&v| v as u128).sum::<u128>()
    );
    // Narrow values cost 4 bytes each; only the five wide ones go to the side list.
    assert_eq!(c.heap_bytes(), values.len() * 4 + 5 * 16);
    let narrow: U64Column = (0..1000u64).collect();
    assert!(!narrow.any_wide());
    assert_eq!(narrow.iter().sum::<u64>(), 999 * 1000 / 2);
    assert_eq!(narrow.heap_bytes(), narrow.len() * 4);
    assert!(U64Column::default().is_empty());
}

#[test]
fn ids_and_self_sizes_past_32_bits_read_back_exactly() {
    // The `Foo` node (id 5, 32 bytes) with an id and a size that need 64 bits, and the
    // string node with exactly u32::MAX as its size (the marker value itself).
    let big_id = (1u64 << 40) + 5;
    let big_size = (1u64 << 33) + 32;
    let j = String::from_utf8(bad(
        "3,3,5,32,2,7,2",
        &format!("3,3,{big_id},{big_size},2,7,2"),
    ))
    .unwrap();
    let j = j.replacen("2,5,7,24,0,0,1", &format!("2,5,7,{},0,0,1", u32::MAX), 1);
    for data in [j.clone().into_bytes(), gzip(j.as_bytes())] {
        let s = read_bytes(&data).unwrap();
        check_invariants(&s);
        assert_eq!(s.node_id.iter().collect::<Vec<_>>(), [1, 3, big_id, 7]);
        assert_eq!(
            s.self_size.iter().collect::<Vec<_>>(),
            [0, 0, big_size, u32::MAX as u64]
        );
        assert_eq!(s.self_size.get(2), big_size);
        assert_eq!(s.node_id.get(2), big_id);
        let sum: u64 = s.self_size.iter().sum();
        assert_eq!(sum, big_size + u32::MAX as u64);
    }
}

/// The string table's 32-bit offsets (8-bit under test, [`super::LOW_BITS`]) read back every
/// string exactly across many boundaries: strings ending on one, crossing one, longer
/// than several, empty ones between.
#[test]
fn string_offsets_read_back_exactly_across_wrap_boundaries() {
    let mut t = super::StringTable::new();
    let mut want: Vec<String> = Vec::new();
    let mut len = 0usize;
    for i in 0..3000usize {
        let n = match i % 7 {
            0 => 0,
            1 => 256 - (len % 256), // ends exactly on a boundary
            2 => 700,               // crosses two or three
            _ => i % 50,
        };
        let s: String = (0..n)
            .map(|k| (b'a' + ((i + k) % 26) as u8) as char)
            .collect();
        len += s.len();
        assert_eq!(t.push(&s) as usize, i);
        want.push(s);
    }
    assert_eq!(t.len(), want.len());
    for (i, s) in want.iter().enumerate() {
        assert_eq!(t.get(i as u32), s, "string {i}");
    }
    assert_eq!(t.get(want.len() as u32), "");
}
