//! File names, private files and directories, and retention. Runs on whichever thread
//! drives the capture (the capture thread or a libuv worker for `finish`), never the JS
//! thread's hot path.
//!
//! Snapshots hold every string of the process, so: directories leakguard creates are
//! 0700, files are created 0600 with `O_EXCL` (a pre-placed symlink or file makes the
//! create fail rather than redirect the write), and the final name appears only by
//! `rename` of a complete, fsynced file. Retention only ever deletes names that match
//! [`parse_name`] — nothing else in the directory is touched.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Code, Error, Result};

pub const SNAPSHOT_EXT: &str = ".heapsnapshot.gz";
pub const MANIFEST_EXT: &str = ".json";
pub const TMP_EXT: &str = ".tmp";

/// `heap-<UTC yyyymmddThhmmssZ>-<pid>-<seq>`: sorts by time, unique per process.
pub fn base_name(now: SystemTime, pid: u32, seq: u64) -> String {
    format!("heap-{}-{pid}-{seq}", utc_stamp(now))
}

/// `yyyymmddThhmmssZ` in UTC, without a date crate (Howard Hinnant's civil_from_days).
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A leakguard snapshot base name split into (stamp, pid, seq), or None for anything else.
pub fn parse_name(base: &str) -> Option<(&str, u32, u64)> {
    let rest = base.strip_prefix("heap-")?;
    let mut parts = rest.splitn(3, '-');
    let stamp = parts.next()?;
    let pid = parts.next()?.parse().ok()?;
    let seq_str = parts.next()?;
    if seq_str.is_empty() || !seq_str.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq = seq_str.parse().ok()?;
    let ok_stamp = stamp.len() == 16
        && stamp.as_bytes()[8] == b'T'
        && stamp.ends_with('Z')
        && stamp[..8]
            .bytes()
            .chain(stamp[9..15].bytes())
            .all(|b| b.is_ascii_digit());
    ok_stamp.then_some((stamp, pid, seq))
}

/// Create `dir` (and parents) with mode 0700 for what leakguard creates; an existing
/// directory is used as it is.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir).map_err(|e| {
        Error::io(
            Code::CaptureWriteFailed,
            format!("creating {}", dir.display()),
            &e,
        )
    })?;
    let md =
        fs::metadata(dir).map_err(|e| Error::io(Code::CaptureWriteFailed, dir.display(), &e))?;
    if !md.is_dir() {
        return Err(Error::new(
            Code::CaptureWriteFailed,
            format!("{} is not a directory", dir.display()),
        ));
    }
    Ok(())
}

/// Create a new private file (0600, exclusive: never follows a pre-placed symlink).
pub fn create_private(path: &Path) -> Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    o.open(path).map_err(|e| {
        Error::io(
            Code::CaptureWriteFailed,
            format!("creating {}", path.display()),
            &e,
        )
    })
}

/// Write `bytes` to `path` through a private temporary file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = with_suffix(path, TMP_EXT);
    let res = (|| {
        let mut f = create_private(&tmp)?;
        let mut limited =
            super::writer::LimitedWriter::new(&mut f, super::writer::file_size_limit());
        limited.write_all(bytes).map_err(|e| {
            Error::io(
                Code::CaptureWriteFailed,
                format!("writing {}", tmp.display()),
                &e,
            )
        })?;
        f.sync_all().map_err(|e| {
            Error::io(
                Code::CaptureWriteFailed,
                format!("fsync of {}", tmp.display()),
                &e,
            )
        })?;
        rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| {
        Error::io(
            Code::CaptureWriteFailed,
            format!("renaming {} to {}", from.display(), to.display()),
            &e,
        )
    })
}

/// fsync a directory so a rename in it survives a crash (a no-op where unsupported).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// One leakguard snapshot found in a directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub base: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub mtime: SystemTime,
}

/// The leakguard snapshots in `dir`, oldest first (by the time in the name, then mtime,
/// then seq). Names that do not parse are not listed.
pub fn list_snapshots(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for de in fs::read_dir(dir)? {
        let de = de?;
        let name = de.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(base) = name.strip_suffix(SNAPSHOT_EXT) else {
            continue;
        };
        if parse_name(base).is_none() {
            continue;
        }
        let md = match fs::symlink_metadata(de.path()) {
            Ok(m) if m.is_file() => m,
            _ => continue,
        };
        out.push(Entry {
            base: base.to_string(),
            path: de.path(),
            bytes: md.len(),
            mtime: md.modified().unwrap_or(UNIX_EPOCH),
        });
    }
    out.sort_by(|a, b| {
        let (sa, _, qa) = parse_name(&a.base).unwrap();
        let (sb, _, qb) = parse_name(&b.base).unwrap();
        sa.cmp(sb).then(a.mtime.cmp(&b.mtime)).then(qa.cmp(&qb))
    });
    Ok(out)
}

/// Delete the oldest snapshots (and their manifests) beyond `max_snapshots` files or
/// `max_bytes` in all; `keep` (the capture just made) is never deleted. Returns the
/// base names removed.
pub fn prune(
    dir: &Path,
    max_snapshots: Option<u64>,
    max_bytes: Option<u64>,
    keep: &str,
) -> io::Result<Vec<String>> {
    let entries = list_snapshots(dir)?;
    let mut count = entries.len() as u64;
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut removed = Vec::new();
    for e in &entries {
        let over_count = max_snapshots.is_some_and(|m| count > m);
        let over_bytes = max_bytes.is_some_and(|m| total > m);
        if !(over_count || over_bytes) {
            break;
        }
        if e.base == keep {
            continue;
        }
        match fs::remove_file(&e.path) {
            // Another process's retention got there first: fine.
            Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        let _ = fs::remove_file(dir.join(format!("{}{MANIFEST_EXT}", e.base)));
        count -= 1;
        total -= e.bytes;
        removed.push(e.base.clone());
    }
    Ok(removed)
}

/// How old a leftover must be before cleanup considers it (a live capture touches its
/// temporary file continuously, and renames its manifest's snapshot within milliseconds).
pub const STALE_AGE: std::time::Duration = std::time::Duration::from_secs(600);

/// Take the advisory lock a live capture holds on its temporary file for its whole life.
#[cfg(unix)]
pub fn lock_exclusive(f: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; non-blocking.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Remove what captures killed mid-way left behind: leakguard `.tmp` files that no live
/// capture holds locked (any process, any pid namespace sharing the directory) and that
/// are older than [`STALE_AGE`], and manifests whose snapshot never appeared. Only
/// leakguard names are considered; symlinks and non-files are never touched.
pub fn remove_stale(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return removed;
    };
    let now = SystemTime::now();
    let old = |md: &fs::Metadata| {
        md.modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_AGE)
    };
    for de in rd.flatten() {
        let name = de.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = de.path();
        if let Some(stem) = name.strip_suffix(TMP_EXT) {
            let base = stem.strip_suffix(MANIFEST_EXT).unwrap_or(stem);
            if parse_name(base).is_none() {
                continue;
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                let opened = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&path);
                let Ok(f) = opened else { continue };
                let Ok(md) = f.metadata() else { continue };
                // Locked means a live capture owns it; our lock goes with our descriptor.
                if md.is_file() && old(&md) && lock_exclusive(&f) && fs::remove_file(&path).is_ok()
                {
                    removed.push(path);
                }
            }
        } else if let Some(base) = name.strip_suffix(MANIFEST_EXT) {
            if parse_name(base).is_none() || dir.join(format!("{base}{SNAPSHOT_EXT}")).exists() {
                continue;
            }
            match fs::symlink_metadata(&path) {
                Ok(md) if md.is_file() && old(&md) && fs::remove_file(&path).is_ok() => {
                    removed.push(path);
                }
                _ => {}
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        // 2026-11-24T09:02:37Z
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(1795510957)),
            "20261124T090237Z"
        );
        // a leap day
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229T000000Z"
        );
    }

    #[test]
    fn names_parse_back_and_strangers_do_not() {
        let n = base_name(UNIX_EPOCH + Duration::from_secs(1795510957), 42, 7);
        assert_eq!(n, "heap-20261124T090237Z-42-7");
        assert_eq!(parse_name(&n), Some(("20261124T090237Z", 42, 7)));
        for bad in [
            "heap-x-1-2",
            "heap-20261124T090237Z-1",
            "heap-20261124T090237Z-1-2x",
            "notes",
            "heap-20261124T090237Z--2",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    fn touch(dir: &Path, name: &str, len: usize) {
        fs::write(dir.join(name), vec![0u8; len]).unwrap();
    }

    #[test]
    fn prune_removes_oldest_beyond_count_and_bytes_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..5 {
            let base = format!("heap-2026112{i}T000000Z-1-{i}");
            touch(d.path(), &format!("{base}{SNAPSHOT_EXT}"), 100);
            touch(d.path(), &format!("{base}{MANIFEST_EXT}"), 10);
        }
        touch(d.path(), "heap-notes.heapsnapshot.gz", 100);
        touch(d.path(), "other.json", 1);
        let removed = prune(d.path(), Some(3), None, "heap-20261124T000000Z-1-4").unwrap();
        assert_eq!(
            removed,
            vec!["heap-20261120T000000Z-1-0", "heap-20261121T000000Z-1-1"]
        );
        let removed = prune(d.path(), None, Some(150), "heap-20261124T000000Z-1-4").unwrap();
        assert_eq!(
            removed,
            vec!["heap-20261122T000000Z-1-2", "heap-20261123T000000Z-1-3"]
        );
        let mut left: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "heap-20261124T000000Z-1-4.heapsnapshot.gz",
                "heap-20261124T000000Z-1-4.json",
                "heap-notes.heapsnapshot.gz",
                "other.json",
            ]
        );
        // The newest is kept even when it alone is over the byte budget.
        assert!(
            prune(d.path(), Some(0), Some(1), "heap-20261124T000000Z-1-4")
                .unwrap()
                .is_empty()
        );
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600_and_refuse_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("a/b");
        ensure_dir(&sub).unwrap();
        assert_eq!(
            fs::metadata(&sub).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let p = sub.join("x.tmp");
        create_private(&p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(create_private(&p).is_err(), "exclusive create");
        let target = d.path().join("target");
        std::os::unix::fs::symlink(&target, sub.join("link.tmp")).unwrap();
        assert!(create_private(&sub.join("link.tmp")).is_err());
        assert!(!target.exists());
    }

    #[cfg(unix)]
    #[test]
    fn stale_leftovers_go_locked_and_recent_ones_stay() {
        let d = tempfile::tempdir().unwrap();
        let long_ago = SystemTime::now() - STALE_AGE - Duration::from_secs(60);
        let make = |name: &str| {
            let p = d.path().join(name);
            fs::write(&p, b"x").unwrap();
            File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(long_ago)
                .unwrap();
            p
        };
        let dead = make("heap-20261124T000000Z-1-1.tmp");
        let live = make("heap-20261124T000000Z-1-2.tmp");
        let holder = File::open(&live).unwrap();
        assert!(lock_exclusive(&holder), "the live capture's lock");
        let orphan = make("heap-20261124T000000Z-1-3.json");
        make("heap-20261124T000000Z-1-4.json");
        make("heap-20261124T000000Z-1-4.heapsnapshot.gz");
        let stranger = make("unrelated.tmp");
        let recent = d.path().join("heap-20261124T000000Z-1-5.tmp");
        fs::write(&recent, b"x").unwrap();
        let mut removed = remove_stale(d.path());
        removed.sort();
        assert_eq!(removed, vec![dead, orphan]);
        assert!(live.exists() && stranger.exists() && recent.exists());
        assert!(d.path().join("heap-20261124T000000Z-1-4.json").exists());
        drop(holder);
    }
}
