//! What one durable write costs on this disk, three ways (docs/performance.md, Format 3):
//! an append plus fdatasync (the file grows: metadata is committed too), an overwrite of
//! space written ahead plus fdatasync (what the journal does), and sled's `apply_batch`
//! plus `flush` (what format 2 did per group commit). And whether syncs overlap
//! (docs/performance.md, Syncs in flight): 2 and 4 writers at once, each in a file of its
//! own or a region of one file, and 1 to 3 writers taking the next 4 KiB page of one file
//! each, as a journal with several groups in flight would. And the journal's two ways of
//! appending a small record (700 bytes, a group of about seven coupons): a buffered write
//! and fdatasync, or an `O_DIRECT | O_DSYNC` rewrite of the block the journal's end lies
//! in (docs/performance.md, Direct appends), with the CPU each takes (the thread's own
//! time, from /proc/thread-self/schedstat).
//!
//!   cargo run --release -p firstcome-benches --example fsync_probe -- [DIR] [ROUNDS]
//!
//! DIR defaults to a temporary directory under the current one (not /tmp, which may be
//! a tmpfs); ROUNDS to 3,000 writes of 2 KiB each.

// A measuring tool: a failed setup aborts the run with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Instant;

/// The calling thread's CPU time so far, in ns (kernel and user).
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

/// Appends `rounds` records of `len` bytes packed one after another from the start of
/// `path` (written ahead), each durable before the next, as the journal does: buffered
/// write + fdatasync, or (`direct`) one `O_DIRECT | O_DSYNC` write of the blocks the record
/// touches, the bytes already in its first block kept. Returns wall and CPU µs per record.
fn journal_appends(path: &std::path::Path, rounds: usize, len: usize, direct: bool) -> (f64, f64) {
    const BLOCK: usize = 4096;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(if direct {
            libc::O_DIRECT | libc::O_DSYNC
        } else {
            0
        })
        .open(path)
        .unwrap();
    let record = vec![7u8; len];
    // Aligned blocks inside an over-allocated buffer (O_DIRECT's rule for memory).
    let mut scratch = vec![0u8; 3 * BLOCK + len];
    let at = scratch.as_ptr().align_offset(BLOCK);
    let mut tail: Vec<u8> = Vec::with_capacity(BLOCK);
    let (t, cpu) = (Instant::now(), thread_cpu_ns());
    let mut end = 0usize;
    for _ in 0..rounds {
        if direct {
            let start = end - tail.len();
            let used = tail.len() + len;
            let buf = &mut scratch[at..at + used.div_ceil(BLOCK) * BLOCK];
            buf[..tail.len()].copy_from_slice(&tail);
            buf[tail.len()..used].copy_from_slice(&record);
            buf[used..].fill(0);
            file.write_all_at(buf, start as u64).unwrap();
            // The bytes of the new end's block, for the next record.
            let in_block = (end + len) % BLOCK;
            tail.clear();
            tail.extend_from_slice(&buf[used - in_block..used]);
        } else {
            file.write_all_at(&record, end as u64).unwrap();
            file.sync_data().unwrap();
        }
        end += len;
    }
    let per = |x: f64| x / rounds as f64;
    (
        per(t.elapsed().as_secs_f64() * 1e6),
        per((thread_cpu_ns() - cpu) as f64 / 1e3),
    )
}

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

    // The journal's appends, the two ways alternated twice (the machine is noisy).
    let journal = dir.path().join("journal");
    std::fs::File::create(&journal)
        .unwrap()
        .write_all_at(&vec![0u8; rounds * 700 + 8192], 0)
        .unwrap();
    std::fs::File::open(&journal).unwrap().sync_all().unwrap();
    for _ in 0..2 {
        for direct in [false, true] {
            let (wall, cpu) = journal_appends(&journal, rounds, 700, direct);
            let name = if direct {
                "700 B appends, O_DIRECT|O_DSYNC:    "
            } else {
                "700 B appends, write + fdatasync:   "
            };
            println!("{name} {wall:7.1} µs, CPU {cpu:5.1} µs");
        }
    }

    // Two writers at once, each overwriting its own prepared file: whether the disk
    // makes two groups durable in the time of one (a second commit in flight).
    for writers in [2usize, 4] {
        let files: Vec<std::fs::File> = (0..writers)
            .map(|w| {
                let f = std::fs::File::create(dir.path().join(format!("parallel{w}"))).unwrap();
                f.write_all_at(&vec![0u8; rounds * record.len()], 0)
                    .unwrap();
                f.sync_all().unwrap();
                f
            })
            .collect();
        let t = Instant::now();
        std::thread::scope(|scope| {
            for f in &files {
                let record = &record;
                scope.spawn(move || {
                    for i in 0..rounds {
                        f.write_all_at(record, (i * record.len()) as u64).unwrap();
                        f.sync_data().unwrap();
                    }
                });
            }
        });
        println!(
            "{writers} files at once, per write:        {:7.1} µs ({:.1} µs each)",
            per_write(t) / writers as f64,
            per_write(t)
        );
        // The same, all in one file, each writer in its own region.
        let one = std::fs::File::create(dir.path().join(format!("shared{writers}"))).unwrap();
        one.write_all_at(&vec![0u8; writers * rounds * record.len()], 0)
            .unwrap();
        one.sync_all().unwrap();
        let t = Instant::now();
        std::thread::scope(|scope| {
            for w in 0..writers {
                let (record, one) = (&record, &one);
                scope.spawn(move || {
                    for i in 0..rounds {
                        let at = ((w * rounds + i) * record.len()) as u64;
                        one.write_all_at(record, at).unwrap();
                        one.sync_data().unwrap();
                    }
                });
            }
        });
        println!(
            "{writers} regions of one file, per write:  {:7.1} µs ({:.1} µs each)",
            per_write(t) / writers as f64,
            per_write(t)
        );
    }

    // As the journal with two syncs in flight: one file, records on pages of their own
    // one after another, each writer taking the next page (an atomic counter).
    for writers in [1usize, 2, 3] {
        let one = std::fs::File::create(dir.path().join(format!("pages{writers}"))).unwrap();
        one.write_all_at(&vec![0u8; (rounds + 8) * 4096], 0)
            .unwrap();
        one.sync_all().unwrap();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let t = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..writers {
                let (record, one, next) = (&record, &one, &next);
                scope.spawn(move || {
                    loop {
                        let page = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if page >= rounds {
                            return;
                        }
                        one.write_all_at(record, (page * 4096) as u64).unwrap();
                        one.sync_data().unwrap();
                    }
                });
            }
        });
        println!(
            "{writers} writers, next page each:        {:7.1} µs per write",
            per_write(t)
        );
    }

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
