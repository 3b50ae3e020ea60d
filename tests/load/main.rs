//! Load under faults: a thousand streams held open through one sidecar. A test binary of its
//! own, because cargo runs test binaries one after another: the load does not share the
//! machine with the reliability tests' clocks.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests run helper servers on their own tasks.
#![allow(clippy::disallowed_methods)]

#[path = "../support/mod.rs"]
mod support;

mod thousand_streams;
