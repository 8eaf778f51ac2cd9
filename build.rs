//! Build script: napi's link setup, and (issue #10) the sampling heap profiler shim
//! `src/binding/sampler.cc`, compiled against the installed Node's headers.
//!
//! The shim is built only with the napi feature, on linux-gnu and macOS, when Node's
//! headers are found; otherwise the addon has no `leakguard_sampler` cfg and
//! lib/allocations.js uses the inspector. Header search, first hit wins:
//! `LEAKGUARD_NODE_INCLUDE`; `<node's prefix>/include/node` for the node running npm
//! (`npm_node_execpath`) or the first `node` on PATH; `~/.cache/node-gyp/<version>/include/node`.
//! `LEAKGUARD_NO_SAMPLER=1` leaves the shim out.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(leakguard_sampler)");
    println!("cargo:rerun-if-changed=src/binding/sampler.cc");
    println!("cargo:rerun-if-env-changed=LEAKGUARD_NODE_INCLUDE");
    println!("cargo:rerun-if-env-changed=LEAKGUARD_NO_SAMPLER");
    if std::env::var_os("CARGO_FEATURE_NAPI").is_none() {
        return;
    }
    napi_build::setup();
    sampler();
}

fn sampler() {
    if std::env::var_os("LEAKGUARD_NO_SAMPLER").is_some_and(|v| !v.is_empty() && v != "0") {
        println!("cargo:warning=LEAKGUARD_NO_SAMPLER is set: allocation sampling will use the inspector");
        return;
    }
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let linux_gnu = os == "linux" && env == "gnu";
    if !(linux_gnu || os == "macos") {
        return;
    }
    let Some(include) = node_include() else {
        println!("cargo:warning=Node's headers (include/node/v8.h) not found: allocation sampling will use the inspector; set LEAKGUARD_NODE_INCLUDE to use V8's sampler directly");
        return;
    };
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file("src/binding/sampler.cc")
        .include(&include)
        .flag_if_supported("-fno-exceptions")
        .flag_if_supported("-fno-rtti")
        .flag_if_supported("-fvisibility=hidden")
        .warnings(false);
    if build.try_compile("leakguard_sampler").is_err() {
        println!("cargo:warning=the sampler shim did not compile against {}: allocation sampling will use the inspector", include.display());
        return;
    }
    if linux_gnu {
        // The V8 symbols come from the node binary at load time; lazy binding keeps an
        // addon loaded into another Node major (which lib/allocations.js never lets call
        // the shim) from failing at load.
        println!("cargo:rustc-cdylib-link-arg=-Wl,-z,lazy");
    }
    println!("cargo:rustc-cfg=leakguard_sampler");
}

fn has_headers(dir: &Path) -> bool {
    dir.join("v8.h").is_file() && dir.join("node_version.h").is_file() && dir.join("v8-profiler.h").is_file()
}

fn node_include() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("LEAKGUARD_NODE_INCLUDE") {
        let d = PathBuf::from(d);
        return has_headers(&d).then_some(d);
    }
    let node = std::env::var_os("npm_node_execpath")
        .map(PathBuf::from)
        .or_else(|| which("node"))?;
    let node = std::fs::canonicalize(&node).unwrap_or(node);
    if let Some(prefix) = node.parent().and_then(Path::parent) {
        let d = prefix.join("include").join("node");
        if has_headers(&d) {
            return Some(d);
        }
    }
    let version = Command::new(&node).arg("-p").arg("process.versions.node").output().ok()?;
    let version = String::from_utf8(version.stdout).ok()?.trim().to_string();
    let home = std::env::var_os("HOME")?;
    let d = PathBuf::from(home).join(".cache/node-gyp").join(version).join("include/node");
    has_headers(&d).then_some(d)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}
