//! `smtp-sink`: an SMTP server on 127.0.0.1 that accepts every message and counts them,
//! to measure how fast firstcome delivers mail (`loadtest/mail.sh`).
//!
//! Plain SMTP only (no TLS, no AUTH), served by mailin-embedded: one thread per open
//! session (`--threads`; a connection beyond that waits for its greeting, so keep it
//! above the sender's pool size). Nothing is stored; per message it keeps only its
//! Message-ID and recipient, to count distinct ones (a duplicate delivery shows as
//! `received` > `ids`, a second mail to the same user with another Message-ID as
//! `ids` > `rcpts` when every user gets one mail).
//!
//! Output on stdout: first line the bound port alone, then every `--every-ms` one line
//!
//! ```text
//! received <N> at <T> last <L> ids <I> rcpts <R> sessions <S>
//! ```
//!
//! `N` messages accepted (final `.` of DATA answered 250), `T` the time of the line and
//! `L` the time the last message was accepted (Unix seconds with microseconds; 0 before
//! the first), `I` distinct Message-IDs, `R` distinct recipients, `S` SMTP sessions
//! opened so far.
//!
//! ```sh
//! smtp-sink --port 0 > sink.log &   # first line: the port
//! ```

use std::collections::HashSet;
use std::io::{self, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use mailin_embedded::response::OK;
use mailin_embedded::{Handler, Response, Server};

/// An SMTP server on 127.0.0.1 that accepts and counts every message.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port to listen on; 0 picks a free one. The bound port is the first stdout line.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Concurrent SMTP sessions served (mailin-embedded's thread pool).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    threads: u32,
    /// Milliseconds between two count lines.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    every_ms: u64,
}

#[derive(Default)]
struct Counts {
    received: AtomicU64,
    /// Unix time of the last accepted message, in microseconds.
    last_us: AtomicU64,
    sessions: AtomicU64,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<Vec<u8>>,
    rcpts: HashSet<String>,
}

/// Cloned by mailin-embedded once per connection: per-message state is per clone.
struct Sink {
    counts: Arc<Counts>,
    rcpts: Vec<String>,
    message_id: Option<Vec<u8>>,
    in_headers: bool,
}

impl Clone for Sink {
    fn clone(&self) -> Self {
        self.counts.sessions.fetch_add(1, Ordering::Relaxed);
        Sink {
            counts: Arc::clone(&self.counts),
            rcpts: Vec::new(),
            message_id: None,
            in_headers: false,
        }
    }
}

impl Handler for Sink {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.rcpts = to.iter().map(|t| t.to_ascii_lowercase()).collect();
        self.message_id = None;
        self.in_headers = true;
        OK
    }

    /// Called once per line of DATA; only the header block is looked at.
    fn data(&mut self, line: &[u8]) -> io::Result<()> {
        if !self.in_headers {
            return Ok(());
        }
        let trimmed = line.trim_ascii_end();
        if trimmed.is_empty() {
            self.in_headers = false;
        } else if trimmed.len() > 11 && trimmed[..11].eq_ignore_ascii_case(b"message-id:") {
            self.message_id = Some(trimmed[11..].trim_ascii().to_vec());
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        {
            let mut seen = self.counts.seen.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(id) = self.message_id.take() {
                seen.ids.insert(id);
            }
            for r in self.rcpts.drain(..) {
                seen.rcpts.insert(r);
            }
        }
        self.counts.last_us.store(now_us(), Ordering::Relaxed);
        self.counts.received.fetch_add(1, Ordering::Relaxed);
        OK
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn secs(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, args.port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("smtp-sink: cannot listen on 127.0.0.1:{}: {e}", args.port);
            return ExitCode::FAILURE;
        }
    };
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => {
            eprintln!("smtp-sink: {e}");
            return ExitCode::FAILURE;
        }
    };

    let counts = Arc::new(Counts::default());
    // The prototype handler is cloned for every session; its own clone is not counted.
    let prototype = Sink {
        counts: Arc::clone(&counts),
        rcpts: Vec::new(),
        message_id: None,
        in_headers: false,
    };
    let mut server = Server::new(prototype);
    server
        .with_name("smtp-sink.invalid")
        .with_num_threads(args.threads)
        .with_tcp_listener(listener);
    // mailin-embedded's error is not Send: only its text leaves the thread.
    let smtp = thread::spawn(move || server.serve().map_err(|e| e.to_string()));

    let mut out = io::stdout().lock();
    if writeln!(out, "{port}").and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    let every = Duration::from_millis(args.every_ms);
    loop {
        thread::sleep(every);
        if smtp.is_finished() {
            let why = match smtp.join() {
                Ok(Ok(())) => "ended".to_string(),
                Ok(Err(e)) => e,
                Err(_) => "panicked".to_string(),
            };
            eprintln!("smtp-sink: the SMTP server stopped: {why}");
            return ExitCode::FAILURE;
        }
        let (ids, rcpts) = {
            let seen = counts.seen.lock().unwrap_or_else(|e| e.into_inner());
            (seen.ids.len(), seen.rcpts.len())
        };
        let line = format!(
            "received {} at {} last {} ids {ids} rcpts {rcpts} sessions {}",
            counts.received.load(Ordering::Relaxed),
            secs(now_us()),
            secs(counts.last_us.load(Ordering::Relaxed)),
            counts.sessions.load(Ordering::Relaxed),
        );
        // A closed stdout (the reader went away) ends the sink.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return ExitCode::SUCCESS;
        }
    }
}
