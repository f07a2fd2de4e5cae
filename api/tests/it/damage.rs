//! Damaged data dirs: a store cut short, flipped, overwritten in the middle, emptied or
//! deleted is refused (exit status 3, nothing written) or served whole, never served with
//! less than it held; `--accept-damaged-store` starts on what is left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::crash::{spawn_configured, terminate};
use crate::helpers::{all_coupons, client, create_campaign_at, issue_thousand, serve_command};

const COUPONS: usize = 20_000;

/// A data dir holding one campaign of `COUPONS` coupons, stopped cleanly, and the
/// coupons as acknowledged.
async fn stopped_store() -> (tempfile::TempDir, String, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let p = spawn_configured(dir.path(), None).await;
    let http = client();
    let cid = create_campaign_at(&http, &p.base, "damage", COUPONS as u64).await;
    let mut acked = Vec::new();
    for b in 0..COUPONS / 1000 {
        acked.extend(issue_thousand(&http, &p.base, &cid, b).await.unwrap());
    }
    terminate(p).await;
    (dir, cid, acked)
}

/// A copy of the data dir, to damage.
fn copy_of(dir: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", dir.display()))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    copy
}

/// Every file under `dir` with its bytes.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The largest file under the store.
fn largest(dir: &Path) -> PathBuf {
    contents(&dir.join("store"))
        .into_iter()
        .max_by_key(|(_, b)| b.len())
        .unwrap()
        .0
}

enum Start {
    /// Exit status 3, with what stderr said.
    Refused(String),
    Served(crate::crash::Process),
}

/// `firstcome serve` on `dir` (with `--accept-damaged-store` if `accept`): refused, or
/// listening.
async fn start(dir: &Path, accept: bool) -> Start {
    let mut cmd = serve_command(dir);
    if accept {
        cmd.arg("--accept-damaged-store");
    }
    let mut child = cmd
        .env("FIRSTCOME_LOG", "error")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let listening = async {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        loop {
            line.clear();
            if stdout.read_line(&mut line).await.unwrap() == 0 {
                return None;
            }
            if let Some(addr) = line.strip_prefix("firstcome listening on ") {
                return Some(addr.trim().to_string());
            }
        }
    };
    let addr = tokio::time::timeout(Duration::from_secs(60), listening)
        .await
        .expect("firstcome starts or stops in time");
    match addr {
        Some(base) => {
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
            });
            Start::Served(crate::crash::Process { child, base })
        }
        None => {
            let status = child.wait().await.unwrap();
            let mut err = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err)
                .await
                .unwrap();
            assert_eq!(
                status.code(),
                Some(3),
                "not refused as damaged: {status:?}: {err}"
            );
            Start::Refused(err)
        }
    }
}

/// The files firstcome writes itself: all but sled's, which sled's own recovery (the
/// one it runs after any crash) may rewrite when it opens a damaged file.
fn firstcome_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = contents(dir);
    files.retain(|p, _| {
        let name = p.file_name().unwrap().to_string_lossy();
        !(p.parent().unwrap().ends_with("store")
            && (name == "db" || name == "conf" || name.starts_with("snap.")))
            && !p.components().any(|c| c.as_os_str() == "blobs")
    });
    files
}

/// Refused with a message that says the store is damaged, writing nothing of its own,
/// and refused again on the next start; or served with every acknowledged coupon.
/// Returns whether it was refused.
async fn refused_or_whole(dir: &Path, cid: &str, acked: &[Value]) -> bool {
    let before = firstcome_files(dir);
    match start(dir, false).await {
        Start::Refused(err) => {
            println!("refused: {}", err.lines().next().unwrap_or_default());
            assert!(err.contains("the store is damaged"), "{err}");
            assert!(err.contains("--accept-damaged-store"), "{err}");
            let after = firstcome_files(dir);
            let changed: Vec<_> = before
                .keys()
                .chain(after.keys())
                .filter(|p| before.get(*p) != after.get(*p))
                .collect();
            assert!(changed.is_empty(), "a refused start changed {changed:?}");
            assert!(
                matches!(start(dir, false).await, Start::Refused(_)),
                "refused once, served the next time"
            );
            true
        }
        Start::Served(p) => {
            let coupons = all_coupons(&client(), &p.base, cid).await;
            assert_eq!(coupons, acked, "served with less than was acknowledged");
            println!("served whole");
            terminate(p).await;
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_refused_or_served_whole_never_served_short() {
    let (dir, cid, acked) = stopped_store().await;

    // The end of sled's file cut off: what sled keeps is a prefix, so the seal sees it.
    let cut = copy_of(dir.path());
    let db = cut.path().join("store/db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    assert!(
        refused_or_whole(cut.path(), &cid, &acked).await,
        "a cut store was served"
    );
    // The operator who has read why can start on what is left.
    match start(cut.path(), true).await {
        Start::Served(p) => terminate(p).await,
        Start::Refused(err) => panic!("--accept-damaged-store did not start: {err}"),
    }

    // The end of the largest file cut, one bit flipped near the end of sled's file, a
    // block of garbage in its middle.
    let cut = copy_of(dir.path());
    let big = largest(cut.path());
    let len = std::fs::metadata(&big).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    refused_or_whole(cut.path(), &cid, &acked).await;

    let flipped = copy_of(dir.path());
    let db = flipped.path().join("store/db");
    let mut bytes = std::fs::read(&db).unwrap();
    let at = bytes.len() - 200;
    bytes[at] ^= 0x10;
    std::fs::write(&db, &bytes).unwrap();
    refused_or_whole(flipped.path(), &cid, &acked).await;

    let garbage = copy_of(dir.path());
    let db = garbage.path().join("store/db");
    let mut bytes = std::fs::read(&db).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 4096].fill(0xa5);
    std::fs::write(&db, &bytes).unwrap();
    refused_or_whole(garbage.path(), &cid, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_emptied_store_is_refused_not_started_empty() {
    let (dir, cid, acked) = stopped_store().await;

    let deleted = copy_of(dir.path());
    std::fs::remove_dir_all(deleted.path().join("store")).unwrap();
    assert!(refused_or_whole(deleted.path(), &cid, &acked).await);
    assert!(
        !deleted.path().join("store").exists(),
        "the refused start created a store"
    );

    // Refused before sled opens it: nothing at all is written, sled's file included.
    let emptied = copy_of(dir.path());
    std::fs::write(emptied.path().join("store/db"), b"").unwrap();
    let before = contents(emptied.path());
    assert!(refused_or_whole(emptied.path(), &cid, &acked).await);
    assert!(
        contents(emptied.path()) == before,
        "the refused start wrote"
    );

    // The data dir itself is sound: it starts, with everything.
    assert!(!refused_or_whole(dir.path(), &cid, &acked).await);
}
