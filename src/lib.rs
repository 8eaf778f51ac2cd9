//! leakguard: find memory leaks in a live Node.js process and capture heap snapshots
//! without taking it down.
//!
//! The core modules are plain Rust and never name napi; `binding` (behind the default
//! `napi` feature) is the only bridge to JavaScript. `cargo test --no-default-features`
//! tests the core.
#![deny(clippy::all)]

pub mod alloc;
pub mod analysis;
pub mod capture;
pub mod error;
pub mod fork;
pub mod listeners;
pub mod log;
pub mod monitor;
pub mod rlimit;
pub mod sites;
pub mod snapshot;
#[cfg(feature = "upload")]
pub mod upload;
pub mod watchdog;

/// Large blocks straight from the kernel ([`alloc`]): the analysis's freed arrays leave
/// the resident set at once instead of as heap holes.
#[global_allocator]
static GLOBAL: alloc::Allocator = alloc::Allocator;

#[cfg(feature = "napi")]
mod binding;
