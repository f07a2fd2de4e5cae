//! `live-subscribers`: holds N live subscribers of one campaign through its sell-out, and
//! reports what that cost and how late they heard of it.
//!
//! 1. Creates a campaign of `--stock` coupons.
//! 2. Opens `--subscribers` event streams on it (`/v1/campaigns/{id}/events`, plain
//!    HTTP/1.1 over TCP, no key) and waits until each has its first event. The server's
//!    RSS (`--server-pid`) before and after gives the memory per subscriber.
//! 3. Issues until sold out: `--connections` closed-loop workers, each request from a new
//!    user. Throughput: coupons over the time from the first request to the last
//!    acknowledgement.
//! 4. Each subscriber notes when its stream says `sold_out`; the lag is that instant
//!    minus the instant the last coupon was acknowledged to its client (negative when
//!    the stream was first: counted as 0, and reported). Each keeps its stream open until
//!    all have heard, as a live page does; the CPU both processes spent from the first
//!    "sold out" answer until then is the fan-out's cost (`fan_out_*_cpu_ms`).
//!
//! Prints a JSON report (and writes it to `--json`). `loadtest/live.sh` runs it with and
//! without subscribers, interleaved, against the release binary.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base_url: String,
    #[arg(long, env = "FIRSTCOME_ADMIN_KEY", hide_env_values = true)]
    admin_key: String,
    #[arg(long, env = "FIRSTCOME_ISSUER_KEY", hide_env_values = true)]
    issuer_key: String,
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    #[arg(long, default_value_t = 200_000)]
    stock: u64,
    /// Issuing workers (closed loop).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// The server's pid, for its RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    #[arg(long)]
    json: Option<PathBuf>,
    /// Only hold the streams open this long, then exit, issuing nothing: for profiling
    /// the fan-out of events that another tool causes (pause and resume the campaign).
    #[arg(long)]
    hold_secs: Option<u64>,
}

fn rss_kb(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) a process has used so far, in ms, from `/proc/<pid>/stat`
/// (`None` for this process). Its resolution is 10 ms.
fn cpu_ms(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // `/proc` counts in USER_HZ, which Linux fixes at 100 for userspace on x86 and arm.
    Some(ticks * 10.0)
}

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    sold_out_at: Option<Instant>,
    bytes: u64,
    events: u64,
}

/// One stream: connects, reads until `sold_out` (or the end), counting what it read.
/// Once the first event is in, `connecting` is released and `first` told; once it has
/// read the sell-out, `heard` is told, and the stream closes when `release` says so.
async fn subscribe(
    addr: String,
    path: String,
    connecting: OwnedSemaphorePermit,
    first: tokio::sync::mpsc::Sender<()>,
    heard: tokio::sync::mpsc::UnboundedSender<()>,
    mut release: tokio::sync::watch::Receiver<bool>,
) -> Result<Seen, std::io::Error> {
    let mut connecting = Some(connecting);
    let mut stream = TcpStream::connect(&addr).await?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut seen = Seen::default();
    let mut buf = vec![0u8; 4096];
    // The tail of the last read, so a marker split across two reads is still found.
    // Bytes, not text: this loop runs ten thousand times an event, on the same two
    // cores as the server it measures.
    let mut carry: Vec<u8> = Vec::new();
    let mut told = false;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(seen);
        }
        seen.bytes += n as u64;
        carry.extend_from_slice(&buf[..n]);
        // Approximate: a marker split across two reads is missed.
        seen.events += count(&buf[..n], b"\nevent: ") as u64;
        if !told && count(&carry, b"event: campaign") > 0 {
            told = true;
            drop(connecting.take());
            let _ = first.send(()).await;
        }
        if count(&carry, b"\"status\":\"sold_out\"") > 0 {
            seen.sold_out_at = Some(Instant::now());
            // Keep the stream open, as a live page does, until every subscriber has
            // heard: a close now would make the server tear this connection down on the
            // same two cores while it is still writing the sell-out to the others.
            let _ = heard.send(());
            // Dropped now, so that `heard` closes once every stream has heard or ended.
            drop(heard);
            let _ = release.wait_for(|released| *released).await;
            return Ok(seen);
        }
        let keep = carry.len().min(64);
        carry.drain(..carry.len() - keep);
    }
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let base = args.base_url.trim_end_matches('/').to_string();
    let addr = base.trim_start_matches("http://").to_string();
    let created: serde_json::Value = http
        .post(format!("{base}/v1/campaigns"))
        .bearer_auth(&args.admin_key)
        .json(&json!({ "name": "live subscribers", "total_stock": args.stock }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_str().ok_or("no campaign id")?.to_string();
    let path = format!("/v1/campaigns/{id}/events");

    // The streams stand in for browsers on other machines, but share these two cores
    // with the server. Their reads run on a runtime of their own, on one thread: at most
    // one core, and a ready stream wakes no other thread (a multi-thread runtime would
    // wake a second worker to steal, for ten thousand tiny reads).
    let readers = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let readers_handle = readers.handle().clone();
    let (stop_readers, readers_stopped) = tokio::sync::oneshot::channel::<()>();
    let readers_thread = std::thread::Builder::new()
        .name("readers".into())
        .spawn(move || {
            let _ = readers.block_on(readers_stopped);
        })?;

    let rss_before_kb = rss_kb(args.server_pid);
    let (first_tx, mut first_rx) = tokio::sync::mpsc::channel(1024);
    let connecting = Arc::new(Semaphore::new(256));
    let connect_started = Instant::now();
    let mut subscribers = Vec::with_capacity(args.subscribers);
    let (heard_tx, mut heard_rx) = tokio::sync::mpsc::unbounded_channel();
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    // At most 256 streams connecting at once (each until its first event): a burst of
    // ten thousand connects would overflow the listen backlog.
    let counting = tokio::spawn(async move {
        let mut connected = 0;
        while connected < args.subscribers {
            match tokio::time::timeout(Duration::from_secs(30), first_rx.recv()).await {
                Ok(Some(())) => connected += 1,
                _ => break,
            }
        }
        connected
    });
    for _ in 0..args.subscribers {
        let (addr, path, first) = (addr.clone(), path.clone(), first_tx.clone());
        let permit = connecting.clone().acquire_owned().await?;
        let (heard, release) = (heard_tx.clone(), release_rx.clone());
        subscribers
            .push(readers_handle.spawn(subscribe(addr, path, permit, first, heard, release)));
    }
    drop(first_tx);
    let connected = counting.await?;
    let connect_secs = connect_started.elapsed().as_secs_f64();
    // Let the server settle (allocations freed after the burst) before reading its RSS.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected_kb = rss_kb(args.server_pid);
    if let Some(secs) = args.hold_secs {
        println!("{id}: {connected} streams open, holding them {secs} s");
        tokio::time::sleep(Duration::from_secs(secs)).await;
        return Ok(());
    }

    let next_user = Arc::new(AtomicU64::new(0));
    let last_ack = Arc::new(Mutex::new(None::<Instant>));
    let acked = Arc::new(AtomicU64::new(0));
    // Both processes' CPU time when the first worker heard "sold out", so the time the
    // fan-out of the sell-out costs each side can be told apart from the issuing's.
    let at_sold_out = Arc::new(std::sync::OnceLock::<(Option<f64>, Option<f64>)>::new());
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        let (http, base, id, key) = (
            http.clone(),
            base.clone(),
            id.clone(),
            args.issuer_key.clone(),
        );
        let (next_user, last_ack, acked) = (next_user.clone(), last_ack.clone(), acked.clone());
        let (at_sold_out, server_pid) = (at_sold_out.clone(), args.server_pid);
        workers.push(tokio::spawn(async move {
            loop {
                let user = next_user.fetch_add(1, Ordering::Relaxed);
                let resp = http
                    .post(format!("{base}/v1/campaigns/{id}/issue"))
                    .bearer_auth(&key)
                    .json(&json!({ "user_id": format!("live-{user}") }))
                    .send()
                    .await;
                let Ok(resp) = resp else { continue };
                match resp.status().as_u16() {
                    201 => {
                        let now = Instant::now();
                        acked.fetch_add(1, Ordering::Relaxed);
                        let mut last = last_ack.lock().await;
                        if last.is_none_or(|l| l < now) {
                            *last = Some(now);
                        }
                    }
                    409 => {
                        at_sold_out.get_or_init(|| (cpu_ms(server_pid), cpu_ms(None)));
                        return;
                    }
                    _ => {}
                }
                let _ = resp.bytes().await;
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let last_ack = last_ack.lock().await.ok_or("nothing was acknowledged")?;
    let issue_secs = (last_ack - started).as_secs_f64();
    let acked = acked.load(Ordering::Relaxed);

    // Every subscriber has heard the sell-out or ended (`heard` closes then), or 30 s
    // passed with no news.
    drop(heard_tx);
    while let Ok(Some(())) = tokio::time::timeout(Duration::from_secs(30), heard_rx.recv()).await {}
    // The sell-out's fan-out: CPU from the first "sold out" answer until every stream
    // said so. This process's CPU is its readers' and the last issuing requests'.
    let (server_then, reader_then) = at_sold_out.get().copied().unwrap_or((None, None));
    let since = |then: Option<f64>, now: Option<f64>| Some(now? - then?);
    let fan_out_server_cpu_ms = since(server_then, cpu_ms(args.server_pid));
    let fan_out_reader_cpu_ms = since(reader_then, cpu_ms(None));
    let _ = release_tx.send(true);

    let mut lag_us = Histogram::<u64>::new(3)?;
    let (mut saw_sold_out, mut before_ack, mut bytes, mut events) = (0u64, 0u64, 0u64, 0u64);
    for s in subscribers {
        let Ok(Ok(seen)) = tokio::time::timeout(Duration::from_secs(30), s).await else {
            continue;
        };
        let Ok(seen) = seen else { continue };
        bytes += seen.bytes;
        events += seen.events;
        if let Some(at) = seen.sold_out_at {
            saw_sold_out += 1;
            let lag = at.saturating_duration_since(last_ack);
            if at < last_ack {
                before_ack += 1;
            }
            lag_us.record(lag.as_micros() as u64)?;
        }
    }
    let _ = stop_readers.send(());
    let _ = readers_thread.join();
    let per_subscriber_kb = match (rss_before_kb, rss_connected_kb) {
        (Some(b), Some(a)) if args.subscribers > 0 => {
            Some(a.saturating_sub(b) as f64 / args.subscribers as f64)
        }
        _ => None,
    };
    let ms = |q: f64| lag_us.value_at_quantile(q) as f64 / 1000.0;
    let report = json!({
        "subscribers": args.subscribers,
        "connected": connected,
        "connect_secs": connect_secs,
        "stock": args.stock,
        "acknowledged": acked,
        "issue_secs": issue_secs,
        "issued_per_sec": acked as f64 / issue_secs,
        "rss_before_kb": rss_before_kb,
        "rss_connected_kb": rss_connected_kb,
        "rss_per_subscriber_kb": per_subscriber_kb,
        "saw_sold_out": saw_sold_out,
        "saw_sold_out_before_the_last_ack": before_ack,
        "lag_ms": {
            "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": lag_us.max() as f64 / 1000.0,
        },
        "fan_out_server_cpu_ms": fan_out_server_cpu_ms,
        "fan_out_reader_cpu_ms": fan_out_reader_cpu_ms,
        "bytes_per_subscriber": if args.subscribers > 0 { bytes / args.subscribers as u64 } else { 0 },
        "events_per_subscriber": if args.subscribers > 0 { events as f64 / args.subscribers as f64 } else { 0.0 },
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(path) = args.json {
        std::fs::write(path, text)?;
    }
    if args.subscribers > 0 && saw_sold_out < args.subscribers as u64 {
        return Err(format!(
            "{} of {} subscribers saw the sell-out",
            saw_sold_out, args.subscribers
        )
        .into());
    }
    Ok(())
}
