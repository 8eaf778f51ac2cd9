//! Errors and their stable codes. No napi here: `binding/` maps an [`Error`] once
//! into a JS error whose `code` is [`Code::as_str`].
//!
//! Codes are API: add new ones freely, never rename or reuse one. The JS side keeps the
//! same table in `lib/errors.js`; a node test checks the two agree.

use std::fmt;

macro_rules! codes {
    ($($variant:ident => $key:literal),+ $(,)?) => {
        /// A stable error code; `as_str` gives `ERR_LEAKGUARD_<AREA>_<PROBLEM>`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $($variant),+ }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The key in `leakguard.codes` (`CAPTURE_IN_PROGRESS`).
            pub fn key(self) -> &'static str {
                match self { $(Code::$variant => $key),+ }
            }

            /// The full code string (`ERR_LEAKGUARD_CAPTURE_IN_PROGRESS`).
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => concat!("ERR_LEAKGUARD_", $key)),+ }
            }
        }
    };
}

codes! {
    OptionsInvalid => "OPTIONS_INVALID",
    CaptureInProgress => "CAPTURE_IN_PROGRESS",
    CaptureNoHeadroom => "CAPTURE_NO_HEADROOM",
    CaptureWriteFailed => "CAPTURE_WRITE_FAILED",
    CapturePipeFailed => "CAPTURE_PIPE_FAILED",
    CaptureIncomplete => "CAPTURE_INCOMPLETE",
    CaptureAborted => "CAPTURE_ABORTED",
    CaptureForkFailed => "CAPTURE_FORK_FAILED",
    CaptureForkUnsupported => "CAPTURE_FORK_UNSUPPORTED",
    CaptureInternal => "CAPTURE_INTERNAL",
    CaptureCooldown => "CAPTURE_COOLDOWN",
    CaptureOutOfBudget => "CAPTURE_OUT_OF_BUDGET",
    AdminNoToken => "ADMIN_NO_TOKEN",
    AdminUnauthorized => "ADMIN_UNAUTHORIZED",
    AdminForbidden => "ADMIN_FORBIDDEN",
    AdminNotFound => "ADMIN_NOT_FOUND",
    AdminMethodNotAllowed => "ADMIN_METHOD_NOT_ALLOWED",
    AdminDownloadDisabled => "ADMIN_DOWNLOAD_DISABLED",
    AdminInternal => "ADMIN_INTERNAL",
    PromClientMissing => "PROM_CLIENT_MISSING",
    WatchLogFailed => "WATCH_LOG_FAILED",
    WatchThreadFailed => "WATCH_THREAD_FAILED",
    ListenersNotAnEmitter => "LISTENERS_NOT_AN_EMITTER",
    ListenersPatchBusy => "LISTENERS_PATCH_BUSY",
    ListenersStopped => "LISTENERS_STOPPED",
    AllocationsUnavailable => "ALLOCATIONS_UNAVAILABLE",
    AllocationsWriteFailed => "ALLOCATIONS_WRITE_FAILED",
    AnalysisInvalidSnapshot => "ANALYSIS_INVALID_SNAPSHOT",
    AnalysisAborted => "ANALYSIS_ABORTED",
    AnalysisReadFailed => "ANALYSIS_READ_FAILED",
    AnalysisNotFound => "ANALYSIS_NOT_FOUND",
    AnalysisInternal => "ANALYSIS_INTERNAL",
    AnalysisOutOfMemory => "ANALYSIS_OUT_OF_MEMORY",
    AnalysisChildFailed => "ANALYSIS_CHILD_FAILED",
    AnalysisInProgress => "ANALYSIS_IN_PROGRESS",
    TestLeak => "TEST_LEAK",
    TestNotCollected => "TEST_NOT_COLLECTED",
    TestBusy => "TEST_BUSY",
    UploadFailed => "UPLOAD_FAILED",
    UploadAborted => "UPLOAD_ABORTED",
    UploadNotFound => "UPLOAD_NOT_FOUND",
    UploadPresignFailed => "UPLOAD_PRESIGN_FAILED",
    UploadUnsupported => "UPLOAD_UNSUPPORTED",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A leakguard error: a stable code and a message that says what happened and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub code: Code,
    pub message: String,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// An I/O failure with what was being done: `"writing /x/heap.tmp: No space left on device"`.
    pub fn io(code: Code, what: impl fmt::Display, err: &std::io::Error) -> Self {
        Self::new(code, format!("{what}: {err}"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_stable_prefix_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in Code::ALL {
            assert!(c.as_str().starts_with("ERR_LEAKGUARD_"));
            assert!(c.as_str().ends_with(c.key()));
            assert!(seen.insert(c.as_str()), "duplicate {c}");
        }
    }
}
