//! The only napi code: decode arguments, call the core, shape results, map errors.
//!
//! Errors cross as napi errors whose message is `[<code>] <message>`; `lib/native.js`
//! turns them into JS `Error`s with `err.code` set (napi's `Task::compute` can only carry
//! napi's own `Status` as a code, so the code travels in the message and is split off
//! once, in JS).

mod analysis;
mod capture;
mod listeners;
mod monitor;
mod rlimit;
mod sites;
#[cfg(feature = "upload")]
mod upload;

use crate::error::{Code, Error};

pub(crate) fn to_napi(e: Error) -> napi::Error {
    napi::Error::new(
        napi::Status::GenericFailure,
        format!("[{}] {}", e.code.as_str(), e.message),
    )
}

pub(crate) fn invalid(msg: impl Into<String>) -> napi::Error {
    to_napi(Error::new(Code::OptionsInvalid, msg))
}

/// `{ KEY: 'ERR_LEAKGUARD_KEY' }` for every code the core knows.
#[napi_derive::napi]
pub fn error_codes() -> std::collections::HashMap<String, String> {
    Code::ALL
        .iter()
        .map(|c| (c.key().to_string(), c.as_str().to_string()))
        .collect()
}
