//! What one durable write costs on this disk, three ways (docs/performance.md, Format 3):
//! an append plus fdatasync (the file grows: metadata is committed too), an overwrite of
//! space written ahead plus fdatasync (what the journal does), and sled's `apply_batch`
//! plus `flush` (what format 2 did per group commit).
//!
//!   cargo run --release -p firstcome-benches --example fsync_probe -- [DIR] [ROUNDS]
//!
//! DIR defaults to a temporary directory under the current one (not /tmp, which may be
//! a tmpfs); ROUNDS to 3,000 writes of 2 KiB each.

// A measuring tool: a failed setup aborts the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = match args.next() {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir_in(".").unwrap(),
    };
    let rounds: usize = args.next().map_or(3000, |r| r.parse().unwrap());
    let record = vec![7u8; 2048];
    let per_write = |t: Instant| t.elapsed().as_secs_f64() * 1e6 / rounds as f64;

    let mut append = std::fs::File::create(dir.path().join("append")).unwrap();
    let t = Instant::now();
    for _ in 0..rounds {
        append.write_all(&record).unwrap();
        append.sync_data().unwrap();
    }
    println!(
        "append + fdatasync:                  {:7.1} µs",
        per_write(t)
    );

    let prepared = std::fs::File::create(dir.path().join("prepared")).unwrap();
    prepared
        .write_all_at(&vec![0u8; rounds * record.len()], 0)
        .unwrap();
    prepared.sync_all().unwrap();
    let t = Instant::now();
    for i in 0..rounds {
        prepared
            .write_all_at(&record, (i * record.len()) as u64)
            .unwrap();
        prepared.sync_data().unwrap();
    }
    println!(
        "overwrite written space + fdatasync: {:7.1} µs",
        per_write(t)
    );

    let db = sled::Config::new()
        .path(dir.path().join("sled"))
        .flush_every_ms(None)
        .open()
        .unwrap();
    let t = Instant::now();
    for i in 0..rounds as u64 {
        let mut batch = sled::Batch::default();
        batch.insert(&i.to_be_bytes(), record.clone());
        db.apply_batch(batch).unwrap();
        db.flush().unwrap();
    }
    println!(
        "sled apply_batch + flush:            {:7.1} µs",
        per_write(t)
    );
}
