//! `limitAddressSpace(budget)`: the CLI's `--memory-limit` (translation only; the rule is
//! in `crate::rlimit`).

use napi_derive::napi;

use super::to_napi;
use crate::rlimit;

/// What the limit was set to: `{ base, limit }`, bytes.
#[napi(object)]
pub struct AddressSpaceLimit {
    pub base: f64,
    pub limit: f64,
}

/// Lower this process's `RLIMIT_AS` to its address space now plus `budget` bytes.
#[napi]
pub fn limit_address_space(budget: f64) -> napi::Result<AddressSpaceLimit> {
    if !(budget.is_finite() && budget > 0.0) {
        return Err(super::invalid(
            "leakguard: the memory limit must be a positive number of bytes",
        ));
    }
    let l = rlimit::limit_address_space(budget as u64).map_err(to_napi)?;
    Ok(AddressSpaceLimit {
        base: l.base as f64,
        limit: l.limit as f64,
    })
}
