//! The `firstcome` binary: `firstcome serve` runs the server, `firstcome check-config`
//! validates the configuration that `serve` would run with.
//!
//! Exit status: 0 on success (and for `--help`, `--version`); 1 for any configuration
//! error, a bad value in a flag or `FIRSTCOME_*` variable included, or a failed start;
//! 2 for a command line clap cannot make sense of (an unknown flag or subcommand);
//! 3 for a store found damaged ([`EXIT_DAMAGED_STORE`]), refused rather than served.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand, ValueEnum};
use firstcome_api::Server;
use firstcome_api::config::{Config, FileConfig, MailOverrides, SmtpOverrides};
use tracing_subscriber::EnvFilter;

/// jemalloc, not glibc's malloc: under thousands of connections glibc's per-thread
/// arenas fragment (malloc and free were ~22 % of the CPU under overload) and never give
/// the memory back. jemalloc's background thread (the `background_threads` feature)
/// returns freed memory on its decay schedule even once the server is idle; its other
/// defaults are in `.cargo/config.toml` (docs/performance.md, Allocator).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The exit status of a start refused because the store is damaged.
const EXIT_DAMAGED_STORE: u8 = 3;

/// firstcome: exact, durable first-come-first-served coupon issuance.
#[derive(Debug, Parser)]
#[command(name = "firstcome", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server. Settings: built-in defaults, overridden by the --config
    /// file, overridden by FIRSTCOME_* environment variables and these flags.
    Serve(ServeArgs),
    /// Validate the configuration (file, environment, flags) exactly as `serve` would,
    /// without starting: prints "ok" and exits 0, or prints the reason and exits 1.
    /// Touches nothing: the data dir is neither created nor opened.
    CheckConfig(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML file with any of the settings below (snake_case keys, e.g. `data_dir`; mail
    /// settings in a `[mail]` table, SMTP in `[mail.smtp]`).
    #[arg(long, env = "FIRSTCOME_CONFIG")]
    config: Option<PathBuf>,
    /// Where the store and the generated API keys live. [default: ./data]
    #[arg(long, env = "FIRSTCOME_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address to listen on. [default: 127.0.0.1:8080]
    #[arg(long, env = "FIRSTCOME_LISTEN")]
    listen: Option<SocketAddr>,
    /// sled page cache in MiB. [default: 128]
    #[arg(long, env = "FIRSTCOME_CACHE_CAPACITY_MB")]
    cache_capacity_mb: Option<u64>,
    /// Largest request body accepted, in bytes; larger gets 413. [default: 16384]
    #[arg(long, env = "FIRSTCOME_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Requests bound for an actor in flight at once; beyond it, 503 `overloaded`.
    /// [default: 10000]
    #[arg(long, env = "FIRSTCOME_MAX_INFLIGHT_REQUESTS")]
    max_inflight_requests: Option<usize>,
    /// Most requests in one group commit. [default: 8192]
    #[arg(long, env = "FIRSTCOME_MAX_COMMIT_BATCH")]
    max_commit_batch: Option<usize>,
    /// Admin API key (campaign management). Generated into the data dir if unset.
    #[arg(long, env = "FIRSTCOME_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Issuer API key (issue and reads). Generated into the data dir if unset.
    #[arg(long, env = "FIRSTCOME_ISSUER_KEY", hide_env_values = true)]
    issuer_key: Option<String>,
    /// Seconds a shutdown waits for in-flight requests. [default: 30]
    #[arg(long, env = "FIRSTCOME_SHUTDOWN_TIMEOUT_SECS")]
    shutdown_timeout_secs: Option<u64>,
    /// Open client connections at most; one more is answered 503 and closed. Lowered to
    /// fit the limit on open files (raised to its hard limit at start). [default: 4096]
    #[arg(long, env = "FIRSTCOME_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Milliseconds a connection over the cap waits for a place before its 503.
    /// [default: 1000]
    #[arg(long, env = "FIRSTCOME_OVER_CAP_WAIT_MS")]
    over_cap_wait_ms: Option<u64>,
    /// Seconds for a request's headers to arrive; also how long a kept-alive
    /// connection may sit idle. [default: 10]
    #[arg(long, env = "FIRSTCOME_HEADER_TIMEOUT_SECS")]
    header_timeout_secs: Option<u64>,
    /// Seconds for a request's body to arrive and its answer to start; else 408.
    /// [default: 30]
    #[arg(long, env = "FIRSTCOME_REQUEST_TIMEOUT_SECS")]
    request_timeout_secs: Option<u64>,
    /// Milliseconds a request may wait for its campaign's actor; one that waited longer
    /// is answered 503 `overloaded` before any work. [default: 2000]
    #[arg(long, env = "FIRSTCOME_QUEUE_DEADLINE_MS")]
    queue_deadline_ms: Option<u64>,
    /// Serve the public live streams and the live page; `false` answers them 404.
    /// [default: true]
    #[arg(long, env = "FIRSTCOME_LIVE_EVENTS")]
    live_events: Option<bool>,
    /// Milliseconds between two counts on a live stream at most (a change of status goes
    /// at once). [default: 1000]
    #[arg(long, env = "FIRSTCOME_LIVE_INTERVAL_MS")]
    live_interval_ms: Option<u64>,
    /// Live streams open at once at most; one more is answered 503 `overloaded` (they
    /// need no key: this keeps connections for issuing). [default: 2048]
    #[arg(long, env = "FIRSTCOME_MAX_LIVE_SUBSCRIBERS")]
    max_live_subscribers: Option<usize>,
    /// Start even though the store was found damaged (it holds less than its seal says,
    /// it is missing or empty, a journal record is damaged), serving what is left of it.
    /// Without it such a start is refused with exit status 3; read why first.
    #[arg(long, env = "FIRSTCOME_ACCEPT_DAMAGED_STORE")]
    accept_damaged_store: bool,
    #[command(flatten)]
    log: LogArgs,
    #[command(flatten)]
    mail: MailArgs,
    #[command(flatten)]
    smtp: SmtpArgs,
}

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Logging")]
struct LogArgs {
    /// Which log lines to write: a tracing env-filter, e.g. `info` or
    /// `info,tower_http=debug` (a line per request).
    #[arg(long = "log", env = "FIRSTCOME_LOG", default_value = "info")]
    filter: String,
    /// `text` for people (colours only when stderr is a terminal and NO_COLOR is unset),
    /// `json` for one JSON object per line.
    #[arg(long, env = "FIRSTCOME_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Each flag replaces the same key of the file's `[mail]` table.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Mail (the [mail] table)")]
struct MailArgs {
    /// Turn mail on or off. [default: true]
    #[arg(long, env = "FIRSTCOME_MAIL_ENABLED")]
    mail_enabled: Option<bool>,
    /// The From of every mail. [default: firstcome <coupons@firstcome.invalid>]
    #[arg(long, env = "FIRSTCOME_MAIL_FROM")]
    mail_from: Option<String>,
    /// The part after `@` in Message-IDs. [default: firstcome.invalid]
    #[arg(long, env = "FIRSTCOME_MAIL_MESSAGE_ID_DOMAIN")]
    mail_message_id_domain: Option<String>,
    /// Concurrent sends, 1 to 256. [default: 8]
    #[arg(long, env = "FIRSTCOME_MAIL_WORKERS")]
    mail_workers: Option<usize>,
    /// How long before a coupon's expiry its reminder is due, in seconds. [default: 86400]
    #[arg(long, env = "FIRSTCOME_MAIL_REMINDER_BEFORE_SECS")]
    mail_reminder_before_secs: Option<u64>,
    /// The first retry waits up to this long, in milliseconds. [default: 1000]
    #[arg(long, env = "FIRSTCOME_MAIL_RETRY_BASE_MS")]
    mail_retry_base_ms: Option<u64>,
    /// No retry waits longer, in seconds. [default: 300]
    #[arg(long, env = "FIRSTCOME_MAIL_RETRY_MAX_DELAY_SECS")]
    mail_retry_max_delay_secs: Option<u64>,
    /// A job still failing this long after it was queued is a dead letter, in seconds.
    /// [default: 86400]
    #[arg(long, env = "FIRSTCOME_MAIL_MAX_AGE_SECS")]
    mail_max_age_secs: Option<u64>,
    /// How often the outbox is checked for retries coming due, in milliseconds.
    /// [default: 200]
    #[arg(long, env = "FIRSTCOME_MAIL_POLL_INTERVAL_MS")]
    mail_poll_interval_ms: Option<u64>,
    /// Directory of template overrides. [default: none, the built-in templates]
    #[arg(long, env = "FIRSTCOME_MAIL_TEMPLATES_DIR")]
    mail_templates_dir: Option<PathBuf>,
    /// Where .eml files go without SMTP. [default: <data_dir>/mail]
    #[arg(long, env = "FIRSTCOME_MAIL_FILES_DIR")]
    mail_files_dir: Option<PathBuf>,
}

/// Each flag but the password replaces the same key of `[mail.smtp]` and makes the table
/// exist, which sends mail by SMTP instead of into .eml files.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "SMTP (the [mail.smtp] table)")]
struct SmtpArgs {
    /// The SMTP server. [default: localhost]
    #[arg(long, env = "FIRSTCOME_SMTP_HOST")]
    smtp_host: Option<String>,
    /// The SMTP port (465 for `tls`). [default: 587]
    #[arg(long, env = "FIRSTCOME_SMTP_PORT")]
    smtp_port: Option<u16>,
    /// `none`, `starttls` (required, never plain) or `tls`. [default: starttls]
    #[arg(long, env = "FIRSTCOME_SMTP_SECURITY")]
    smtp_security: Option<String>,
    /// SMTP user name (with a password, or neither).
    #[arg(long, env = "FIRSTCOME_SMTP_USERNAME")]
    smtp_username: Option<String>,
    /// The SMTP password, kept out of the config file. Alone it does not turn SMTP on.
    #[arg(long, env = "FIRSTCOME_SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
    /// Connect and per-command timeout, in seconds. [default: 10]
    #[arg(long, env = "FIRSTCOME_SMTP_TIMEOUT_SECS")]
    smtp_timeout_secs: Option<u64>,
    /// Deadline of one whole send, waiting for a connection included, in seconds.
    /// [default: 30]
    #[arg(long, env = "FIRSTCOME_SMTP_SEND_TIMEOUT_SECS")]
    smtp_send_timeout_secs: Option<u64>,
    /// Idle connections kept for reuse. [default: 8]
    #[arg(long, env = "FIRSTCOME_SMTP_POOL_MAX")]
    smtp_pool_max: Option<u32>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A value that does not parse (a port that is not a number, an unknown log
            // format) is a configuration error like those found after parsing, and
            // gets the same status, so that `check-config` fails one way only.
            let bad_value = matches!(
                e.kind(),
                ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8
            );
            let _ = e.print();
            return if bad_value {
                ExitCode::FAILURE
            } else {
                ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
            };
        }
    };
    let (check_only, args) = match cli.command {
        Command::Serve(args) => (false, args),
        Command::CheckConfig(args) => (true, args),
    };
    if let Err(e) = init_logging(&args.log) {
        eprintln!("firstcome: {e}");
        return ExitCode::FAILURE;
    }
    if check_only {
        return match config(args).and_then(|c| c.check().map_err(Into::into)) {
            Ok(()) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("firstcome: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("firstcome: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("firstcome: {e}");
            if e.downcast_ref::<firstcome_api::ServeError>()
                .is_some_and(firstcome_api::ServeError::is_damaged_store)
            {
                eprintln!(
                    "firstcome: the store was refused and nothing was written to it. Restore \
                     the data dir from a backup, or start with --accept-damaged-store to serve \
                     what is left (coupons lost this way may be issued again to others)."
                );
                return ExitCode::from(EXIT_DAMAGED_STORE);
            }
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout carries the lines meant for the operator: generated keys,
/// the address), without ANSI colours unless stderr is a terminal, so that journald,
/// Docker and files get plain text.
fn init_logging(args: &LogArgs) -> Result<(), String> {
    let filter = EnvFilter::try_new(&args.filter)
        .map_err(|e| format!("FIRSTCOME_LOG / --log {:?}: {e}", args.filter))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match args.log_format {
        LogFormat::Text => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            builder
                .with_ansi(std::io::stderr().is_terminal() && !no_color)
                .try_init()
        }
        // The request span (request_id, method, path) is in `span` and `spans` of each
        // line written while a request is handled.
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    installed.map_err(|e| format!("installing the logger: {e}"))
}

/// The configuration `serve` runs with, from the file, the environment and the flags.
fn config(args: ServeArgs) -> Result<Config, Box<dyn std::error::Error>> {
    let overrides = FileConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        cache_capacity_mb: args.cache_capacity_mb,
        max_body_bytes: args.max_body_bytes,
        max_inflight_requests: args.max_inflight_requests,
        max_commit_batch: args.max_commit_batch,
        admin_key: args.admin_key,
        issuer_key: args.issuer_key,
        shutdown_timeout_secs: args.shutdown_timeout_secs,
        max_connections: args.max_connections,
        over_cap_wait_ms: args.over_cap_wait_ms,
        header_timeout_secs: args.header_timeout_secs,
        request_timeout_secs: args.request_timeout_secs,
        queue_deadline_ms: args.queue_deadline_ms,
        live_events: args.live_events,
        live_interval_ms: args.live_interval_ms,
        max_live_subscribers: args.max_live_subscribers,
        mail: None,
    };
    let m = args.mail;
    let s = args.smtp;
    let mail = MailOverrides {
        enabled: m.mail_enabled,
        from: m.mail_from,
        message_id_domain: m.mail_message_id_domain,
        workers: m.mail_workers,
        reminder_before_secs: m.mail_reminder_before_secs,
        retry_base_ms: m.mail_retry_base_ms,
        retry_max_delay_secs: m.mail_retry_max_delay_secs,
        max_age_secs: m.mail_max_age_secs,
        poll_interval_ms: m.mail_poll_interval_ms,
        templates_dir: m.mail_templates_dir,
        files_dir: m.mail_files_dir,
        smtp: SmtpOverrides {
            host: s.smtp_host,
            port: s.smtp_port,
            security: s.smtp_security,
            username: s.smtp_username,
            password: s.smtp_password,
            timeout_secs: s.smtp_timeout_secs,
            pool_max: s.smtp_pool_max,
            send_timeout_secs: s.smtp_send_timeout_secs,
        },
    };
    Ok(Config::load(args.config.as_deref(), overrides, mail)?)
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    // A file grown past RLIMIT_FSIZE raises SIGXFSZ, whose default action kills the
    // process mid-write. Handled (and ignored) here, the write fails with EFBIG instead,
    // and the store fails stop with a log line saying why, as on a full disk.
    #[cfg(target_os = "linux")]
    let _file_size_limit = {
        const SIGXFSZ: i32 = 25;
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(SIGXFSZ)).ok()
    };
    let accept_damaged_store = args.accept_damaged_store;
    let config = Config {
        accept_damaged_store,
        ..config(args)?
    };
    let server = Server::start(config).await?;
    if !server.generated_keys.is_empty() {
        // Printed once, on the start that generated them; they stay in the data dir.
        println!("generated API keys (kept in the data dir, printed only now):");
        for (scope, key) in &server.generated_keys {
            println!("  {scope}: {key}");
        }
    }
    let stop = shutdown_signal();
    println!("firstcome listening on http://{}", server.addr);
    stop.await;
    tracing::info!("shutting down: finishing in-flight requests");
    server.shutdown().await;
    tracing::info!("stopped; everything acknowledged is durable");
    Ok(())
}

/// Resolves at SIGINT or SIGTERM. The handlers are installed when this is called, not
/// when it is first polled: call it before announcing the address, so that a SIGTERM
/// sent the moment the address is printed is a clean stop, not the default kill.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)))
    };
    async move {
        #[cfg(unix)]
        if let Ok((mut term, mut int)) = signals {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
