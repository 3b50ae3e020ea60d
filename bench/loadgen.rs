//! The benchmark's load generator: N workers, each on its own keep-alive HTTP/1.1
//! connection, POST the same body for a duration and record, per request, the time to the
//! first body byte (time to first token for streams) and to the end of the answer.
//!
//! `loadgen --url URL --body FILE --concurrency N --seconds S [--warmup S] [--rate R] [--pid PID]...`
//! prints one JSON line: requests/s, latency and TTFB percentiles (microseconds), and the CPU
//! time the given processes used during the measured window.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long)]
    body: std::path::PathBuf,
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Processes whose CPU time is measured over the window (the proxy under test).
    #[arg(long)]
    pid: Vec<u32>,
    /// Requests per second for all workers together (paced evenly per worker); unlimited
    /// when absent. A fixed rate compares proxies at the same load: at their own maximum a
    /// proxy that is slower leaves the load generator's CPU idle, and every wake-up of an
    /// idle CPU costs the sender (an inter-processor interrupt, a VM exit on a VM).
    #[arg(long)]
    rate: Option<f64>,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
}

#[derive(Default)]
struct Samples {
    total_us: Vec<u32>,
    first_byte_us: Vec<u32>,
    errors: u64,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let uri: hyper::Uri = args.url.parse().unwrap();
    let body = Bytes::from(std::fs::read(&args.body).unwrap());
    let start = Instant::now() + Duration::from_secs_f64(args.warmup);
    let end = start + Duration::from_secs_f64(args.seconds);
    let cpu_at_start = {
        let pids = args.pid.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            cpu_ticks(&pids)
        })
    };
    let pace = args
        .rate
        .map(|rate| Duration::from_secs_f64(args.concurrency as f64 / rate));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|i| {
            // Staggered, so paced workers do not send in bursts.
            let offset = pace.map(|p| p.mul_f64(i as f64 / args.concurrency as f64));
            let load = Load {
                uri: uri.clone(),
                body: body.clone(),
                start,
                end,
                pace: pace.zip(offset),
            };
            tokio::spawn(worker(load))
        })
        .collect();
    let mut all = Samples::default();
    for w in workers {
        let s = w.await.unwrap();
        all.total_us.extend(s.total_us);
        all.first_byte_us.extend(s.first_byte_us);
        all.errors += s.errors;
    }
    let cpu_ticks_used = cpu_ticks(&args.pid) - cpu_at_start.await.unwrap();
    let requests = all.total_us.len();
    let cpu_ms = cpu_ticks_used as f64 * 1000.0 / args.clk_tck as f64;
    let report = serde_json::json!({
        "requests": requests,
        "errors": all.errors,
        "rps": requests as f64 / args.seconds,
        "p50_us": percentile(&mut all.total_us, 0.50),
        "p99_us": percentile(&mut all.total_us, 0.99),
        "ttfb_p50_us": percentile(&mut all.first_byte_us, 0.50),
        "ttfb_p99_us": percentile(&mut all.first_byte_us, 0.99),
        "cpu_ms": cpu_ms,
        "cpu_ms_per_req": if requests > 0 { cpu_ms / requests as f64 } else { 0.0 },
    });
    println!("{report}");
}

/// What one worker sends, when, and for how long.
struct Load {
    uri: hyper::Uri,
    body: Bytes,
    start: Instant,
    end: Instant,
    /// The interval between this worker's requests, and its first request's delay.
    pace: Option<(Duration, Duration)>,
}

async fn worker(load: Load) -> Samples {
    let Load {
        uri,
        body,
        start,
        end,
        pace,
    } = load;
    let mut ticks = pace.map(|(every, offset)| {
        let mut t = tokio::time::interval_at((Instant::now() + offset).into(), every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    let mut samples = Samples::default();
    let addr = format!("{}:{}", uri.host().unwrap(), uri.port_u16().unwrap_or(80));
    let host = uri.authority().unwrap().to_string();
    'connect: while Instant::now() < end {
        let Ok(stream) = tokio::net::TcpStream::connect(&addr).await else {
            samples.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        stream.set_nodelay(true).unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        while Instant::now() < end {
            if let Some(ticks) = ticks.as_mut() {
                ticks.tick().await;
            }
            let request = hyper::Request::post(uri.path())
                .header("host", &host)
                .header("content-type", "application/json")
                .body(Full::new(body.clone()))
                .unwrap();
            let began = Instant::now();
            let Ok(response) = sender.send_request(request).await else {
                samples.errors += 1;
                continue 'connect;
            };
            let ok = response.status().is_success();
            // The server's last answer on this connection (its keep-alive bound): connect
            // again after it, as any HTTP client does, without counting an error.
            let last = response
                .headers()
                .get(hyper::header::CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let mut body = response.into_body();
            let mut first_byte = None;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    samples.errors += 1;
                    continue 'connect;
                };
                if first_byte.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
                    first_byte = Some(began.elapsed());
                }
            }
            let total = began.elapsed();
            if !ok {
                samples.errors += 1;
            } else if began >= start {
                samples.total_us.push(micros(total));
                samples
                    .first_byte_us
                    .push(micros(first_byte.unwrap_or(total)));
            }
            if last {
                continue 'connect;
            }
        }
        break;
    }
    samples
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn percentile(values: &mut [u32], q: f64) -> u32 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let index = ((values.len() as f64 - 1.0) * q).round() as usize;
    values[index]
}

/// utime + stime of the processes, in clock ticks.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|stat| {
            // Fields after the command name (which may contain spaces) start after ") ".
            let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            field(11) + field(12)
        })
        .sum()
}
