//! Graph analysis on synthetic snapshots made with the shared `Builder`.

use super::diff::{Facts, Kind};
use super::*;
use crate::snapshot::{Builder, EdgeName};

use EdgeName::{Index, Str};

/// root ─shortcut→ global ─store→ Object ─sessions→ Map ─table→ (array) ─[slots]→ UserRecord×n
/// each UserRecord ─name→ string; root ─element→ (GC roots) ─element→ global.
fn sessions(n: u32, first_id: u64) -> HeapSnapshot {
    let mut b = Builder::v8();
    // Ordinals: 0 root, 1 (GC roots), 2 global, 3 store, 4 Map, 5 table, then records.
    let rec = |i: u32| 6 + 2 * i;
    b.node("synthetic", "", 1, 0);
    b.edge("element", Index(1), 1);
    b.edge("shortcut", Str("global"), 2);
    b.node("synthetic", "(GC roots)", 3, 0);
    b.edge("element", Index(1), 2);
    b.node("object", "global", 5, 40);
    b.edge("property", Str("store"), 3);
    b.node("object", "Object", 7, 24);
    b.edge("property", Str("sessions"), 4);
    b.node("object", "Map", 9, 32);
    b.edge("internal", Str("table"), 5);
    b.node("array", "", 11, 16 + 24 * n as u64);
    for i in 0..n {
        b.edge("internal", Str(&(5 + 3 * i + 1).to_string()), rec(i));
    }
    for i in 0..n {
        b.node("object", "UserRecord", first_id + 4 * i as u64, 32);
        b.edge("property", Str("name"), rec(i) + 1);
        b.node("string", "user", first_id + 4 * i as u64 + 2, 20);
    }
    b.finish()
}

#[test]
fn summary_counts_sizes_and_retained_by_class() {
    let s = sessions(3, 101);
    let ctl = Control::new();
    let g = Graph::build(&s, &ctl).unwrap();
    let sum = summary::summarize(&g, &ctl).unwrap();
    assert_eq!(sum.nodes, 12);
    assert_eq!(sum.total_bytes, 40 + 24 + 32 + 88 + 3 * 52);
    let get = |n: &str| sum.classes.iter().find(|c| c.name == n).unwrap().clone();
    assert_eq!(get("UserRecord").count, 3);
    assert_eq!(get("UserRecord").shallow, 96);
    assert_eq!(get("UserRecord").retained, 3 * 52);
    assert_eq!(get("Map").retained, 32 + 88 + 3 * 52);
    assert_eq!(get("global").retained, sum.total_bytes);
    // Synthetic nodes have size 0: not counted, as in DevTools.
    assert!(sum.classes.iter().all(|c| c.name != "(synthetic)"));
    assert_eq!(sum.classes[0].name, "global");
    assert_eq!(g.distance[2], 1);
    assert_eq!(g.distance[6], 5);
}

#[test]
fn class_retained_counts_only_instances_no_other_instance_dominates() {
    // root → A1 → A2 → x; A1 and A2 are one class: only A1's retained size counts.
    let mut b = Builder::v8();
    b.node("synthetic", "", 1, 0);
    b.edge("shortcut", Str("g"), 1);
    b.node("object", "A", 3, 10);
    b.edge("property", Str("next"), 2);
    b.node("object", "A", 5, 20);
    b.edge("property", Str("x"), 3);
    b.node("object", "X", 7, 5);
    let s = b.finish();
    let ctl = Control::new();
    let g = Graph::build(&s, &ctl).unwrap();
    let sum = summary::summarize(&g, &ctl).unwrap();
    let a = sum.classes.iter().find(|c| c.name == "A").unwrap();
    assert_eq!((a.count, a.shallow, a.retained), (2, 30, 35));
}

#[test]
fn weak_edges_weakmap_table_edges_and_non_root_shortcuts_do_not_retain() {
    let mut b = Builder::v8();
    b.node("synthetic", "", 1, 0); // 0
    b.edge("shortcut", Str("g"), 1);
    b.node("object", "global", 3, 8); // 1
    b.edge("property", Str("wm"), 2);
    b.edge("property", Str("key"), 4);
    b.edge("weak", Str("w"), 5);
    b.edge("shortcut", Str("s"), 6);
    b.edge("property", Str("p"), 7);
    b.node("object", "WeakMap", 5, 8); // 2
    b.edge("internal", Str("table"), 3);
    b.node("array", "", 7, 8); // 3: the table, id 7
    b.edge(
        "internal",
        Str("3 / part of key (Key @9) -> value (Val @11) pair in WeakMap (table @7)"),
        8,
    );
    b.node("object", "Key", 9, 8); // 4
    b.edge(
        "internal",
        Str("3 / part of key (Key @9) -> value (Val @11) pair in WeakMap (table @7)"),
        8,
    );
    b.node("object", "Weakly", 13, 8); // 5: only a weak edge
    b.node("object", "Short", 15, 8); // 6: only a shortcut from a non-root node
    b.node("object", "P", 17, 8); // 7
    b.edge("shortcut", Str("s2"), 6);
    b.node("object", "Val", 11, 100); // 8
    let s = b.finish();
    let ctl = Control::new();
    let g = Graph::build(&s, &ctl).unwrap();
    // The value is dominated by its key, not by the table.
    assert_eq!(g.idom[8], 4);
    assert_eq!(g.retained[4], 108);
    // Weakly held: hangs under the root.
    assert_eq!(g.idom[5], 0);
    // Shortcuts from non-root nodes do not count: Short is only held that way.
    assert_eq!(g.idom[6], 0);
    assert_eq!(g.distance[5], super::graph::NO_DISTANCE);
    // The value's distance comes from the second of its two edges met: the table's (WeakMap + 1 = 4, not key + 1 = 3).
    assert_eq!(g.distance[8], 4);
}

#[test]
fn retainer_paths_merge_by_class_and_read_as_text() {
    let s = sessions(4, 101);
    let ctl = Control::new();
    let g = Graph::build(&s, &ctl).unwrap();
    let p = retainers(&g, "UserRecord", 5, &ctl).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].count, 4);
    assert_eq!(p[0].retained_bytes, 4 * 52);
    assert_eq!(
        p[0].text,
        "global → store (property) → Object → sessions (property) → Map → table (internal) → (array) → [] (internal) → UserRecord"
    );
    assert_eq!(p[0].steps[0].edge, None);
    assert_eq!(p[0].steps[2].edge.as_deref(), Some("sessions"));
    assert_eq!(p[0].steps.last().unwrap().node, "UserRecord");
    assert!(retainers(&g, "NoSuchClass", 5, &ctl).unwrap().is_empty());
}

#[test]
fn diff_by_id_and_by_aggregate_and_the_map_detector() {
    let ctl = Control::new();
    let before = sessions(3, 101);
    let after = sessions(20, 101);
    let gb = Graph::build(&before, &ctl).unwrap();
    let facts = Facts::of(&gb, &ctl).unwrap();
    let ga = Graph::build(&after, &ctl).unwrap();
    let r = diff::diff(&facts, &ga, &DiffOptions::default(), &ctl).unwrap();
    assert_eq!(r.method, Method::Id, "{}", r.method_reason);
    let u = r.classes.iter().find(|c| c.name == "UserRecord").unwrap();
    assert_eq!(u.count_delta, 17);
    assert_eq!(u.new_count, Some(17));
    assert_eq!(u.deleted_count, Some(0));
    assert_eq!(u.allocated_bytes, Some(17 * 32));
    let paths = u.retainers.as_ref().unwrap();
    assert_eq!(paths[0].count, 17);
    assert!(paths[0].text.contains("sessions (property) → Map"));
    let d = r.detectors.iter().find(|d| d.kind == Kind::Map).unwrap();
    assert_eq!((d.before, d.after), (3, 20));
    assert!(d
        .path
        .as_ref()
        .unwrap()
        .text
        .ends_with("sessions (property) → Map"));

    // Different ids (another process): by aggregate, the detector matches by path.
    let other = sessions(20, 90_001);
    let go = Graph::build(&other, &ctl).unwrap();
    let r = diff::diff(&facts, &go, &DiffOptions::default(), &ctl).unwrap();
    assert_eq!(r.method, Method::Aggregate, "{}", r.method_reason);
    let u = r.classes.iter().find(|c| c.name == "UserRecord").unwrap();
    assert_eq!(u.count_delta, 17);
    assert_eq!(u.new_count, None);
    assert_eq!(u.retainers.as_ref().unwrap()[0].count, 20);
    let d = r.detectors.iter().find(|d| d.kind == Kind::Map).unwrap();
    assert_eq!((d.before, d.after), (3, 20));
}

/// An emitter whose `_events.data` array of listeners grows.
fn emitter(listeners: u32) -> HeapSnapshot {
    let mut b = Builder::v8();
    b.node("synthetic", "", 1, 0);
    b.edge("shortcut", Str("g"), 1);
    b.node("object", "global", 3, 8); // 1
    b.edge("property", Str("bus"), 2);
    b.node("object", "EventEmitter", 5, 8); // 2
    b.edge("property", Str("_events"), 3);
    b.node("object", "Object", 7, 8); // 3
    b.edge("property", Str("data"), 4);
    b.edge("property", Str("end"), 5);
    b.node("object", "Array", 9, 16); // 4
    for i in 0..listeners {
        b.edge("element", Index(i), 6 + i);
    }
    b.node("closure", "onEnd", 11, 32); // 5
    for i in 0..listeners {
        b.node("closure", "onData", 100 + 2 * i as u64, 32);
    }
    b.finish()
}

#[test]
fn the_listener_detector_sees_a_growing_listener_array() {
    let ctl = Control::new();
    let sb = emitter(2);
    let gb = Graph::build(&sb, &ctl).unwrap();
    let facts = Facts::of(&gb, &ctl).unwrap();
    let sa = emitter(40);
    let ga = Graph::build(&sa, &ctl).unwrap();
    let r = diff::diff(&facts, &ga, &DiffOptions::default(), &ctl).unwrap();
    let d = r
        .detectors
        .iter()
        .find(|d| d.kind == Kind::Listeners)
        .unwrap();
    assert_eq!(
        (d.before, d.after, d.event.as_deref()),
        (2, 40, Some("data"))
    );
    assert_eq!(d.class_name, "EventEmitter");
    assert!(d.advice.contains("remove the listener"));
    assert!(r
        .detectors
        .iter()
        .all(|d| d.event.as_deref() != Some("end")));
}

#[test]
fn table_entries_group_slots_by_entry() {
    let ctl = Control::new();
    let s = sessions(5, 101);
    let g = Graph::build(&s, &ctl).unwrap();
    let obs = diff::observe(&g, &|v| Some(g.snap.node_id.get(v as usize)), &ctl).unwrap();
    let m = obs.iter().find(|o| o.kind == Kind::Map).unwrap();
    assert_eq!(m.count, 5);
}

/// root ─g→ global ─lookup→ Map ─table→ (array) laid out as V8's, with `buckets` buckets:
/// entries `id → name` (the key a small integer, so only the value is in the graph) and
/// `name → id` (only the key), alternating, `pairs` of each.
fn id_name_map(pairs: u32, buckets: u32) -> HeapSnapshot {
    let mut b = Builder::v8();
    b.node("synthetic", "", 1, 0);
    b.edge("shortcut", Str("g"), 1);
    b.node("object", "global", 3, 8); // 1
    b.edge("property", Str("lookup"), 2);
    b.node("object", "Map", 5, 32); // 2
    b.edge("internal", Str("table"), 3);
    // A FixedArray: map and length words, then 3 + buckets + 2 × buckets × 3 slots.
    let len = 3 + 7 * buckets as u64;
    b.node("array", "", 7, 16 + 8 * len); // 3
    let start = 3 + buckets;
    for i in 0..pairs {
        let e = start + 6 * i; // entry 2i: id → name (the value), entry 2i+1: name → id (the key)
        b.edge("internal", Str(&(e + 1).to_string()), 4 + i);
        b.edge("internal", Str(&(e + 3).to_string()), 4 + i);
    }
    for i in 0..pairs {
        b.node("string", &format!("user-{i}"), 9 + 2 * i as u64, 24);
    }
    b.finish()
}

#[test]
fn a_map_of_small_integer_keys_and_object_keys_counts_every_entry() {
    // The table's size says where its entries start: the first slot in the graph (entry
    // 0's value) is not an entry's first slot, and entry 1's key must not join entry 0.
    let ctl = Control::new();
    for (pairs, buckets) in [(1, 2), (8, 8), (300, 512)] {
        let s = id_name_map(pairs, buckets);
        let g = Graph::build(&s, &ctl).unwrap();
        let obs = diff::observe(&g, &|v| Some(g.snap.node_id.get(v as usize)), &ctl).unwrap();
        let m = obs.iter().find(|o| o.kind == Kind::Map).unwrap();
        assert_eq!(
            m.count,
            2 * pairs as u64,
            "{pairs} pairs in {buckets} buckets"
        );
    }
    // V8's sizes, with and without pointer compression; not V8's layout → None.
    assert_eq!(diff::entries_start(16 + 8 * (3 + 7 * 2), 3), Some(5));
    assert_eq!(diff::entries_start(8 + 4 * (3 + 7 * 256), 3), Some(259));
    assert_eq!(diff::entries_start(16 + 8 * (3 + 5 * 4), 2), Some(7));
    assert_eq!(diff::entries_start(16 + 8 * (3 + 7 * 3), 3), None);
    assert_eq!(diff::entries_start(40, 3), None);
}

/// root ─g→ global ─byId→ Object with `n` integer keys (elements) and a `__proto__`.
fn object_by_id(n: u32) -> HeapSnapshot {
    let mut b = Builder::v8();
    b.node("synthetic", "", 1, 0);
    b.edge("shortcut", Str("g"), 1);
    b.node("object", "global", 3, 8); // 1
    b.edge("property", Str("byId"), 2);
    b.node("object", "Object", 5, 24); // 2
    b.edge("property", Str("__proto__"), 3);
    for i in 0..n {
        b.edge("element", Index(1000 + i), 4 + i);
    }
    b.node("object", "Object", 7, 24); // 3
    for i in 0..n {
        b.node("string", "user", 9 + 2 * i as u64, 20);
    }
    b.finish()
}

#[test]
fn an_object_keyed_by_integer_ids_is_a_map_to_the_object_detector() {
    let ctl = Control::new();
    let gb_s = object_by_id(9);
    let gb = Graph::build(&gb_s, &ctl).unwrap();
    let facts = Facts::of(&gb, &ctl).unwrap();
    let ga_s = object_by_id(400);
    let ga = Graph::build(&ga_s, &ctl).unwrap();
    let r = diff::diff(&facts, &ga, &DiffOptions::default(), &ctl).unwrap();
    let d = r.detectors.iter().find(|d| d.kind == Kind::Object).unwrap();
    assert_eq!((d.before, d.after), (9, 400));
    assert!(d
        .path
        .as_ref()
        .unwrap()
        .text
        .ends_with("byId (property) → Object"));
}

/// summarize's lean path (edges freed early, no distance BFS) must give exactly what the
/// full graph gives, detached natives and WeakMap edges included.
#[test]
fn lean_summarize_equals_the_full_graphs_summary() {
    let mut shapes = vec![sessions(5, 101), sessions(1, 7)];
    // Detached natives, a WeakMap table→value edge, a weakly held node and a clique.
    let mut b = Builder::v8();
    b.node("synthetic", "", 1, 0);
    b.edge("shortcut", Str("g"), 1);
    b.edge("element", Index(1), 6);
    b.node("object", "global", 3, 10);
    b.edge("property", Str("wm"), 2);
    b.edge("property", Str("dom"), 4);
    b.node("object", "WeakMap", 5, 20);
    b.edge("internal", Str("table"), 3);
    b.node("array", "", 7, 30);
    b.edge(
        "internal",
        Str("1 / part of key (Object @9) -> value (V @11) pair in WeakMap (table @7)"),
        5,
    );
    b.node("native", "HTMLDivElement", 9, 40);
    b.edge("element", Index(0), 7);
    b.node("object", "V", 11, 50);
    b.edge("weak", Str("w"), 8);
    b.node("synthetic", "(GC roots)", 13, 0);
    b.node("native", "Text", 15, 60);
    b.node("object", "Weakling", 17, 70);
    b.edge("property", Str("a"), 9);
    b.node("object", "C", 19, 80);
    b.edge("property", Str("b"), 10);
    b.node("object", "C", 21, 90);
    b.edge("property", Str("a"), 9);
    b.set_detachedness(vec![0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]);
    shapes.push(b.finish());
    for s in shapes {
        let ctl = Control::new();
        let g = Graph::build(&s, &ctl).unwrap();
        let full = summary::summarize(&g, &ctl).unwrap();
        let lean = summary::summarize_owned(s.clone(), &ctl).unwrap();
        assert_eq!(
            (lean.nodes, lean.edges, lean.total_bytes),
            (full.nodes, full.edges, full.total_bytes)
        );
        assert_eq!(lean.classes, full.classes);
    }
}

/// `before`'s id table keeps self sizes in 32 bits with an exact side table: sizes past
/// u32 still free and allocate exactly in a by-id diff.
#[test]
fn sizes_past_32_bits_stay_exact_in_the_by_id_diff() {
    let big = |n: u32, extra: bool| {
        let mut b = Builder::v8();
        b.node("synthetic", "", 1, 0);
        b.edge("shortcut", Str("g"), 1);
        b.node("object", "global", 3, 10);
        for i in 0..n {
            b.edge("property", Str(&format!("a{i}")), 2 + i);
        }
        for i in 0..n {
            b.node("object", "Huge", 5 + 2 * i as u64, (1u64 << 33) + i as u64);
        }
        if extra {
            b.node("object", "Huge", 1001, (1u64 << 40) + 7);
        }
        b.finish()
    };
    let ctl = Control::new();
    // before: Huge ids 5, 7, 9 plus an unreferenced one (1001); after: 5, 7, 9, 11.
    let before = big(3, true);
    let after = big(4, false);
    let gb = Graph::build(&before, &ctl).unwrap();
    let facts = Facts::of(&gb, &ctl).unwrap();
    assert_eq!(
        facts.ids.entries().map(|e| e.2).max(),
        Some((1u64 << 40) + 7)
    );
    let ga = Graph::build(&after, &ctl).unwrap();
    let opts = DiffOptions {
        method: Method::Id,
        ..Default::default()
    };
    let r = diff::diff(&facts, &ga, &opts, &ctl).unwrap();
    let h = r.classes.iter().find(|c| c.name == "Huge").unwrap();
    assert_eq!(h.new_count, Some(1));
    assert_eq!(h.allocated_bytes, Some((1u64 << 33) + 3));
    assert_eq!(h.deleted_count, Some(1));
    assert_eq!(h.freed_bytes, Some((1u64 << 40) + 7));
    assert_eq!(h.shallow_delta, ((1i64 << 33) + 3) - ((1i64 << 40) + 7));
}

/// diff's lean path (`diff_owned`: edges, after's ids and before's id table freed before
/// the dominators) must give exactly what `diff` of two full graphs gives.
#[test]
fn lean_diff_equals_the_full_graphs_diff() {
    let pairs = vec![
        (sessions(3, 101), sessions(20, 101)),
        (sessions(3, 101), sessions(20, 90_001)),
        (emitter(2), emitter(40)),
        (sessions(20, 101), sessions(2, 101)),
    ];
    for (b, a) in pairs {
        for method in [Method::Auto, Method::Id, Method::Aggregate] {
            let ctl = Control::new();
            let opts = DiffOptions {
                method,
                min_growth: 1,
                ..Default::default()
            };
            let gb = Graph::build(&b, &ctl).unwrap();
            let facts = Facts::of(&gb, &ctl).unwrap();
            let ga = Graph::build(&a, &ctl).unwrap();
            let full = diff::diff(&facts, &ga, &opts, &ctl).unwrap();
            let lean = diff_owned(b.clone(), || Ok(a.clone()), &opts, &ctl, &ctl).unwrap();
            assert_eq!(format!("{lean:?}"), format!("{full:?}"));
        }
    }
}

/// root → global → three closures: two of script 4 (`app.js`, through shared → SFI →
/// script → name) and one of script 9, whose SFI leads to no script. The location list is
/// out of node order. Both builds name them alike, one walk per script.
#[test]
fn closures_are_named_by_their_scripts_file_in_both_builds() {
    use crate::snapshot::Location;
    let mut b = Builder::v8();
    // 0 root, 1 global, 2 c1, 3 c2, 4 c3, 5 sfi, 6 script, 7 "app.js", 8 sfi without script
    b.node("synthetic", "", 1, 0);
    b.edge("shortcut", Str("global"), 1);
    b.node("object", "global", 3, 40);
    b.edge("property", Str("a"), 2);
    b.edge("property", Str("b"), 3);
    b.edge("property", Str("c"), 4);
    for (id, name, sfi) in [(5, "handler", 5), (7, "other", 5), (9, "lone", 8)] {
        b.node("closure", name, id, 32);
        b.edge("internal", Str("shared"), sfi);
    }
    b.node("code", "system / SharedFunctionInfo", 11, 20);
    b.edge("internal", Str("script"), 6);
    b.node("code", "system / Script", 13, 20);
    b.edge("internal", Str("name"), 7);
    b.node("string", "app.js", 15, 16);
    b.node("code", "system / SharedFunctionInfo", 17, 20);
    for (node, script_id, line, column) in [(3, 4, 9, 2), (2, 4, 0, 0), (4, 9, 5, 7)] {
        b.location(Location {
            node,
            script_id,
            line,
            column,
        });
    }
    let snap = b.finish();
    let ctl = Control::new();
    let want = [
        (2, Some("app.js:1:1")),
        (3, Some("app.js:10:3")),
        (4, Some("script #9:6:8")),
        (1, None),
    ];
    let full = Graph::build(&snap, &ctl).unwrap();
    for (v, w) in want {
        assert_eq!(
            full.locations.of(&full, v).as_deref(),
            w,
            "full build, node {v}"
        );
    }
    let mut owned = snap.clone();
    let (lean, ()) =
        Graph::build_lean(&mut owned, true, false, &ctl, |_, _| Ok(()), |_, ()| Ok(())).unwrap();
    for (v, w) in want {
        assert_eq!(
            lean.locations.of(&lean, v).as_deref(),
            w,
            "lean build, node {v}"
        );
    }
}

/// `both` runs its two halves at once and returns both answers, re-raising the helper's
/// panic on the caller.
#[test]
fn both_returns_both_answers_and_reraises_the_helpers_panic() {
    let main = std::thread::current().id();
    let (a, b) = super::both(|| (std::thread::current().id(), 7), || 8);
    assert_eq!((a.1, b), (7, 8));
    assert_ne!(a.0, main, "the first half ran on a helper thread");
    let r = std::panic::catch_unwind(|| super::both(|| -> u32 { panic!("helper") }, || 1));
    assert!(r.is_err());
}
