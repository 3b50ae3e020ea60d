//! What admission and settlement cost on the memory backend, per request: three rules a
//! request matches (per key, per customer over a sliding minute, a global daily budget), over
//! 1,000 customers. `cargo bench --bench limits` prints nanoseconds per request.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use respan_sidecar::config::limits::{limits, RawLimits};
use respan_sidecar::limits::{Ask, Facts, Limits};
use std::hint::black_box;
use std::time::{Instant, SystemTime};

fn main() {
    let raw: RawLimits = serde_yaml::from_str(
        "rules:\n  - {name: k, per: key, window: day, requests: 100000000, tokens: 100000000000}\n  - {name: c, per: customer, window: minute, requests: 100000000}\n  - {name: g, per: global, window: month, cost_usd: 100000000}\n",
    )
    .expect("rules");
    let mut problems = Vec::new();
    let config = limits(raw, None, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let l = Limits::default();
    let customers: Vec<String> = (0..1000).map(|i| format!("customer-{i}")).collect();
    let ask = Ask {
        tokens: 1200,
        cost_usd: 0.002,
    };
    let n = 200_000;
    let start = Instant::now();
    for i in 0..n {
        let facts = Facts {
            key: Some("team-a"),
            customer: Some(&customers[i % customers.len()]),
            model: "gpt-4o",
            metadata: &[],
        };
        let mut ticket = l
            .admit(&config.rules, facts, ask, SystemTime::now())
            .expect("admitted");
        l.settle(&mut ticket, black_box(900), black_box(0.0015));
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!("memory backend: admission + settlement, 3 rules: {per:.0} ns per request");
}
