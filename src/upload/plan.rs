//! Which files make up one leakguard capture, given any one of them. Runs on the JS thread
//! (a few `stat` calls, no reads) when `upload()` is called, so that object keys and
//! pre-signed URLs can be asked for before the job is queued.
//!
//! A capture is `<base>.heapsnapshot.gz` (or a raw `<base>.heapsnapshot`), its manifest
//! `<base>.json` and, where present, an allocation profile `<base>.heapprofile` or
//! `<base>.pprof`/`<base>.pb.gz`. Invariants: the manifest, when there is one, is the last
//! file in the plan (its upload marks the set complete in the store); only regular files
//! are listed (a symlink or directory is never followed or uploaded); a path that is none
//! of these kinds is uploaded alone, as the role `file`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Code, Error, Result};

/// One local file of a capture and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// `snapshot`, `profile`, `manifest` or `file`.
    pub role: &'static str,
    pub path: PathBuf,
    /// The file name (the last component), as it goes into the object key.
    pub name: String,
    pub bytes: u64,
    pub content_type: &'static str,
}

/// Known suffixes, longest first, with the role and content type of each.
const KINDS: &[(&str, &str, &str)] = &[
    (".heapsnapshot.gz", "snapshot", "application/gzip"),
    (".heapsnapshot", "snapshot", "application/json"),
    (".heapprofile", "profile", "application/json"),
    (".pb.gz", "profile", "application/gzip"),
    (".pprof", "profile", "application/octet-stream"),
    (".json", "manifest", "application/json"),
];

fn regular(path: &Path) -> Option<u64> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Some(m.len()),
        _ => None,
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The files to upload for `path`: snapshot, profile(s), manifest last.
pub fn plan(path: &Path) -> Result<Vec<PlannedFile>> {
    let Some(bytes) = regular(path) else {
        return Err(Error::new(
            Code::UploadNotFound,
            format!(
                "{} is not a regular file (missing, a directory or a symlink); nothing was uploaded",
                path.display()
            ),
        ));
    };
    let name = file_name(path);
    let Some(&(suffix, _, _)) = KINDS.iter().find(|(s, _, _)| name.ends_with(s)) else {
        return Ok(vec![PlannedFile {
            role: "file",
            path: path.to_path_buf(),
            name,
            bytes,
            content_type: "application/octet-stream",
        }]);
    };
    let base = &name[..name.len() - suffix.len()];
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    let mut manifest = None;
    let mut have_snapshot = false;
    for &(sfx, role, ct) in KINDS {
        if role == "snapshot" && have_snapshot {
            continue; // a .gz and a raw snapshot of one base: the one asked for, else the .gz
        }
        let p = dir.join(format!("{base}{sfx}"));
        if role == "snapshot" && suffix.starts_with(".heapsnapshot") && sfx != suffix {
            continue;
        }
        let Some(bytes) = regular(&p) else { continue };
        let f = PlannedFile {
            role,
            name: file_name(&p),
            path: p,
            bytes,
            content_type: ct,
        };
        match role {
            "manifest" => manifest = Some(f),
            "snapshot" => {
                have_snapshot = true;
                out.push(f)
            }
            _ => out.push(f),
        }
    }
    out.extend(manifest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str, bytes: usize) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, vec![b'x'; bytes]).unwrap();
        p
    }

    #[test]
    fn any_member_of_a_capture_plans_the_whole_set_manifest_last() {
        let d = tempfile::tempdir().unwrap();
        let base = "heap-20260101T000000Z-42-1";
        let snap = touch(d.path(), &format!("{base}.heapsnapshot.gz"), 10);
        let man = touch(d.path(), &format!("{base}.json"), 3);
        let prof = touch(d.path(), &format!("{base}.heapprofile"), 5);
        touch(d.path(), "heap-20260101T000000Z-42-2.json", 1); // another capture
        for asked in [&snap, &man, &prof] {
            let p = plan(asked).unwrap();
            let roles: Vec<_> = p.iter().map(|f| f.role).collect();
            assert_eq!(roles, ["snapshot", "profile", "manifest"], "from {asked:?}");
            assert_eq!(p[0].bytes, 10);
            assert_eq!(p[2].name, format!("{base}.json"));
        }
    }

    #[test]
    fn a_snapshot_without_manifest_and_a_foreign_file_upload_alone() {
        let d = tempfile::tempdir().unwrap();
        let snap = touch(d.path(), "x.heapsnapshot.gz", 4);
        assert_eq!(plan(&snap).unwrap().len(), 1);
        let other = touch(d.path(), "notes.txt", 2);
        let p = plan(&other).unwrap();
        assert_eq!((p.len(), p[0].role), (1, "file"));
    }

    #[test]
    fn a_raw_snapshot_asked_for_is_not_swapped_for_the_gz() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), "a.heapsnapshot.gz", 4);
        let raw = touch(d.path(), "a.heapsnapshot", 9);
        let p = plan(&raw).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, raw);
    }

    #[test]
    fn missing_paths_directories_and_symlinks_are_refused() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            plan(&d.path().join("nope.heapsnapshot.gz"))
                .unwrap_err()
                .code,
            Code::UploadNotFound
        );
        assert_eq!(plan(d.path()).unwrap_err().code, Code::UploadNotFound);
        #[cfg(unix)]
        {
            let t = touch(d.path(), "t.heapsnapshot.gz", 1);
            let l = d.path().join("l.heapsnapshot.gz");
            std::os::unix::fs::symlink(&t, &l).unwrap();
            assert_eq!(plan(&l).unwrap_err().code, Code::UploadNotFound);
        }
    }
}
