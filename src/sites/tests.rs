use super::*;

const MIB: f64 = 1024.0 * 1024.0;

fn frame(name: &str, url: &str, line: u32) -> Frame {
    Frame::new(name.into(), url.into(), 1, line, 3, "/srv/app")
}

/// Frames: 0 (root), 1 app handler, 2 express-session save, 3 node: internal, 4 cache fn.
fn sites(window_ms: f64) -> Sites {
    let mut s = Sites::new(Config {
        depth: 8,
        window_ms,
        max_sites: 100,
        cwd: "/srv/app".into(),
        min_rise_bytes: 256.0 * 1024.0,
    });
    s.add_frames([
        Frame::new("(root)".into(), String::new(), 0, 0, 0, ""),
        frame("handler", "/srv/app/server.js", 8),
        frame(
            "save",
            "/srv/app/node_modules/express-session/session/session.js",
            71,
        ),
        frame("emit", "node:events", 500),
        frame("fill", "file:///srv/app/lib/cache%20x.js", 12),
    ]);
    s
}

/// root → handler → save (leaking `leak` bytes), root → emit → fill (`flat` bytes).
fn read(leak: f64, flat: f64) -> Vec<Node> {
    vec![
        Node {
            id: 1,
            parent: -1,
            frame: 0,
            self_bytes: 0.0,
        },
        Node {
            id: 2,
            parent: 0,
            frame: 1,
            self_bytes: 0.0,
        },
        Node {
            id: 3,
            parent: 1,
            frame: 2,
            self_bytes: leak,
        },
        Node {
            id: 4,
            parent: 0,
            frame: 3,
            self_bytes: 0.0,
        },
        Node {
            id: 5,
            parent: 3,
            frame: 4,
            self_bytes: flat,
        },
    ]
}

#[test]
fn a_steadily_growing_site_is_growing_and_a_flat_one_is_not() {
    let w = 60_000.0;
    let mut s = sites(w);
    let mut rng = 7u64;
    for i in 0..80 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let noise = (rng % 1000) as f64 / 1000.0 - 0.5;
        let t = 1e12 + i as f64 * 1000.0;
        s.push(
            t,
            read(10.0 * MIB + i as f64 * 2.0 * MIB, 20.0 * MIB + noise * MIB),
            Vec::new(),
            false,
        );
    }
    let r = s.report(2.0 * MIB * 3600.0, 10);
    assert_eq!(r.len(), 2);
    assert!(r[0].growth.growing, "{:?}", r[0]);
    assert_eq!(
        r[0].frames,
        vec![2, 1],
        "leaf first, pseudo root dropped, ends at the app frame"
    );
    // ~2 MiB per second → 7,200 MiB/h.
    let per_h = r[0].growth.slope_bytes_per_hour / MIB;
    assert!((per_h - 7200.0).abs() < 50.0, "{per_h}");
    assert!(r[0].share > 0.95 && r[0].share <= 1.0, "{}", r[0].share);
    // Named by the app frame (index 1: handler), not express-session's.
    assert_eq!(
        s.frame(r[0].frames[r[0].name_frame]).unwrap().function_name,
        "handler"
    );
    assert!(!r[1].growth.growing, "{:?}", r[1]);
    assert_eq!(r[1].share, 0.0);
    // The second site's leaf is app code (a file: URL): the site is that frame alone.
    assert_eq!(r[1].frames, vec![4]);
    assert_eq!(s.frame(4).unwrap().file, "lib/cache x.js");
}

#[test]
fn a_small_site_rising_by_less_than_a_few_samples_is_noise() {
    let mut s = sites(60_000.0);
    for i in 0..60 {
        // +4 KiB per read: strictly rising, ~240 KiB in all, under the 256 KiB rise.
        s.push(
            1e12 + i as f64 * 1000.0,
            read(i as f64 * 4096.0, 0.0),
            Vec::new(),
            false,
        );
    }
    let r = s.report(1.0, 10);
    assert!(r.iter().all(|x| !x.growth.growing), "{r:?}");
}

#[test]
fn a_cache_that_filled_and_stopped_is_not_growing() {
    let mut s = sites(60_000.0);
    for i in 0..120 {
        let t = 1e12 + i as f64 * 1000.0;
        let fill = (i.min(40) as f64) * MIB; // fills for 40 s, then bounded
        s.push(t, read(0.0, fill), Vec::new(), false);
    }
    let r = s.report(0.0, 10);
    assert!(r.iter().all(|x| !x.growth.growing), "{r:?}");
}

#[test]
fn too_few_points_never_grow_and_absent_sites_count_zero() {
    let mut s = sites(60_000.0);
    for i in 0..4 {
        s.push(
            1e12 + i as f64 * 1000.0,
            read(i as f64 * 10.0 * MIB, 0.0),
            Vec::new(),
            false,
        );
    }
    assert!(!s.report(1.0, 10)[0].growth.growing);
    // A read without the site: its live bytes are 0 now.
    s.push(1e12 + 5000.0, read(0.0, 5.0), Vec::new(), false);
    let r = s.report(0.0, 10);
    let leak = r.iter().find(|x| x.frames == vec![2, 1]).unwrap();
    assert_eq!(leak.live_bytes, 0.0);
}

#[test]
fn history_and_site_count_are_bounded() {
    let mut s = Sites::new(Config {
        depth: 2,
        window_ms: 10_000.0,
        max_sites: 50,
        cwd: String::new(),
        min_rise_bytes: 0.0,
    });
    s.add_frames((0..500).map(|i| frame(&format!("f{i}"), "/x.js", i)));
    for r in 0..400u32 {
        // Each read: 100 distinct sites, changing over time.
        let mut nodes = vec![Node {
            id: 0,
            parent: -1,
            frame: 0,
            self_bytes: 0.0,
        }];
        for k in 0..100u32 {
            nodes.push(Node {
                id: k + 1,
                parent: 0,
                frame: 1 + (r + k) % 499,
                self_bytes: 1000.0 + k as f64,
            });
        }
        s.push(1e12 + r as f64 * 500.0, nodes, Vec::new(), false);
        assert!(s.site_count() <= 50, "{}", s.site_count());
    }
    for site in s.sites.values() {
        assert!(site.points.len() <= MAX_POINTS + 4);
    }
    assert!(s.bytes() < 1 << 20, "{}", s.bytes());
}

#[test]
fn depth_truncates_stacks_into_one_site() {
    let mut s = Sites::new(Config {
        depth: 1,
        window_ms: 60_000.0,
        max_sites: 10,
        cwd: String::new(),
        min_rise_bytes: 0.0,
    });
    s.add_frames([
        frame("a", "/a.js", 1),
        frame("b", "/b.js", 2),
        frame("c", "/c.js", 3),
    ]);
    // Two stacks a→c and b→c share the leaf c: with depth 1 they are one site.
    let nodes = vec![
        Node {
            id: 1,
            parent: -1,
            frame: 0,
            self_bytes: 0.0,
        },
        Node {
            id: 2,
            parent: 0,
            frame: 2,
            self_bytes: 100.0,
        },
        Node {
            id: 3,
            parent: -1,
            frame: 1,
            self_bytes: 0.0,
        },
        Node {
            id: 4,
            parent: 2,
            frame: 2,
            self_bytes: 50.0,
        },
    ];
    s.push(1.0, nodes, Vec::new(), false);
    let r = s.report(0.0, 10);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].live_bytes, 150.0);
}

#[test]
fn callers_above_the_app_frame_do_not_split_a_site() {
    let mut s = Sites::new(Config {
        depth: 8,
        window_ms: 60_000.0,
        max_sites: 10,
        cwd: String::new(),
        min_rise_bytes: 0.0,
    });
    s.add_frames([
        frame("route", "/srv/node_modules/router/index.js", 1),
        frame("dispatch", "/srv/node_modules/router/route.js", 2),
        frame("handler", "/srv/server.js", 3),
        frame("save", "/srv/node_modules/store/index.js", 4),
    ]);
    // route → handler → save and route → dispatch → handler → save: one site, save ← handler.
    let nodes = vec![
        Node {
            id: 1,
            parent: -1,
            frame: 0,
            self_bytes: 0.0,
        },
        Node {
            id: 2,
            parent: 0,
            frame: 2,
            self_bytes: 0.0,
        },
        Node {
            id: 3,
            parent: 1,
            frame: 3,
            self_bytes: 100.0,
        },
        Node {
            id: 4,
            parent: 0,
            frame: 1,
            self_bytes: 0.0,
        },
        Node {
            id: 5,
            parent: 3,
            frame: 2,
            self_bytes: 0.0,
        },
        Node {
            id: 6,
            parent: 4,
            frame: 3,
            self_bytes: 60.0,
        },
    ];
    s.push(1.0, nodes, Vec::new(), false);
    let r = s.report(0.0, 10);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].frames, vec![3, 2]);
    assert_eq!(r[0].live_bytes, 160.0);
}

#[test]
fn display_paths_are_relative_to_the_cwd_and_decoded() {
    assert_eq!(display_file("/srv/app/a/b.js", "/srv/app"), "a/b.js");
    assert_eq!(
        display_file("/srv/application/b.js", "/srv/app"),
        "/srv/application/b.js"
    );
    assert_eq!(
        display_file("file:///srv/app/x%20y.mjs", "/srv/app/"),
        "x y.mjs"
    );
    assert_eq!(
        display_file("node:internal/x", "/srv/app"),
        "node:internal/x"
    );
    assert_eq!(display_file("/a%zz", ""), "/a%zz");
}

#[test]
fn heapprofile_export_round_trips_the_tree_and_totals() {
    let mut s = sites(60_000.0);
    let samples = vec![
        SampleRec {
            size: 3.0 * MIB,
            node_id: 3,
            ordinal: 1.0,
        },
        SampleRec {
            size: 1.0 * MIB,
            node_id: 5,
            ordinal: 2.0,
        },
    ];
    s.push(1e12, read(3.0 * MIB, 1.0 * MIB), samples, false);
    let bytes = export::heapprofile(s.last(), s.frames());
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    fn total(n: &serde_json::Value) -> f64 {
        n["selfSize"].as_f64().unwrap()
            + n["children"]
                .as_array()
                .unwrap()
                .iter()
                .map(total)
                .sum::<f64>()
    }
    assert_eq!(total(&v["head"]), 4.0 * MIB);
    assert_eq!(v["head"]["callFrame"]["functionName"], "(root)");
    let save = &v["head"]["children"][0]["children"][0];
    assert_eq!(save["callFrame"]["functionName"], "save");
    assert_eq!(
        save["callFrame"]["lineNumber"], 70,
        "0-based in the protocol"
    );
    assert_eq!(v["samples"].as_array().unwrap().len(), 2);
}

#[test]
fn pprof_export_decodes_with_the_same_sites_and_bytes() {
    use prost::Message;
    use std::io::Read as _;
    let mut s = sites(60_000.0);
    s.push(
        1e12,
        read(3.0 * MIB, 1.0 * MIB),
        vec![SampleRec {
            size: 3.0 * MIB,
            node_id: 3,
            ordinal: 1.0,
        }],
        false,
    );
    let gz = pprof::encode(s.last(), s.frames(), 32768.0);
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    let p = pprof::Profile::decode(&raw[..]).unwrap();
    assert_eq!(p.string_table[0], "");
    assert_eq!(p.sample.len(), 2);
    let space: i64 = p.sample.iter().map(|x| x.value[1]).sum();
    assert_eq!(space as f64, 4.0 * MIB);
    let leaf = p
        .sample
        .iter()
        .find(|x| x.value[1] == (3.0 * MIB) as i64)
        .unwrap();
    let loc = &p.location[(leaf.location_id[0] - 1) as usize];
    let f = &p.function[(loc.line[0].function_id - 1) as usize];
    assert_eq!(p.string_table[f.name as usize], "save");
    assert_eq!(loc.line[0].line, 71);
    assert_eq!(
        leaf.location_id.len(),
        2,
        "save ← handler; the root is not a frame"
    );
    assert_eq!(p.period, 32768);
}

/// A bounded cache's site under load (the lru-cache fixture measured: the handler's live
/// bytes 192 KiB after a major GC, ~3 MiB before the next, ~12 s later): 2 MiB live, its
/// dead entries piling up in old space between major GCs every 6 s at a rate that ramps
/// with the load. Reads every 100 ms over a 72 s window (`intervalMs: 100`); the first read
/// after each major GC is clean when `flag_clean`.
fn garbage_run(flag_clean: bool) -> (Growth, f64) {
    let mut s = sites(72_000.0);
    let t0 = 1e12;
    for i in 0..720 {
        let t = i as f64 * 100.0;
        let since_gc = t % 6000.0;
        let rate = 0.5 * MIB * (1.0 + t / 20_000.0); // bytes per second of dead entries
        let dead = rate * since_gc / 1000.0;
        let clean = flag_clean && since_gc == 0.0 && i > 0;
        s.push(t0 + t, read(2.0 * MIB + dead, 0.0), Vec::new(), clean);
    }
    let width = s.bucket_width;
    let r = s.report(0.0, 10);
    let site = r.iter().find(|x| x.frames == vec![2, 1]).unwrap();
    (site.growth.clone(), width)
}

#[test]
fn dead_objects_between_major_gcs_are_not_growth_when_reads_after_a_gc_are_clean() {
    // Unflagged (every read may hold dead objects): the buckets' minima ride the garbage
    // and the site reads as growing — the false positive this guards against.
    let (dirty, w) = garbage_run(false);
    assert!(
        dirty.growing,
        "the series must show the problem unflagged: {dirty:?}"
    );
    assert_eq!(w, 72_000.0 / 60.0, "no clean reads: the window's share");
    // Flagged: buckets follow the 6 s GC rhythm and take the clean reads' bytes.
    let (clean, w) = garbage_run(true);
    assert!(!clean.growing, "{clean:?}");
    assert_eq!(w, 6000.0, "the median interval between clean reads");
}

#[test]
fn a_real_leak_still_grows_when_its_points_come_from_clean_reads() {
    let mut s = sites(72_000.0);
    for i in 0..300 {
        let t = i as f64 * 100.0;
        let since_gc = t % 2000.0;
        let live = 2.0 * MIB + t / 1000.0 * MIB; // +1 MiB/s retained
        let dead = 4.0 * MIB * since_gc / 1000.0;
        s.push(
            1e12 + t,
            read(live + dead, 0.0),
            Vec::new(),
            since_gc == 0.0 && i > 0,
        );
    }
    let r = s.report(3600.0 * MIB, 10);
    let g = &r.iter().find(|x| x.frames == vec![2, 1]).unwrap().growth;
    assert!(g.growing, "{g:?}");
    // The clean reads' slope: 1 MiB/s = 3,600 MiB/h.
    assert!(
        (g.slope_bytes_per_hour / MIB - 3600.0).abs() < 72.0,
        "{g:?}"
    );
}
