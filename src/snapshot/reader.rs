//! Streaming `.heapsnapshot` / `.heapsnapshot.gz` reader (to be written: issue #12).
