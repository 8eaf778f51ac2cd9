//! Streaming class histogram over snapshot JSON as it is written (to be written: issue #11).
