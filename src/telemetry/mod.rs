//! What the gateway reports about itself: Prometheus metrics and its own logs.
//!
//! Used by every other module; uses none of them.

pub mod logging;
pub mod metrics;
