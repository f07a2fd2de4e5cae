//! The `firstcome` binary: `firstcome serve` runs the server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use firstcome_api::Server;
use firstcome_api::config::{Config, FileConfig};
use tracing_subscriber::EnvFilter;

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
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// TOML file with any of the settings below (snake_case keys, e.g. `data_dir`).
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
    /// Turn mail on or off (the `[mail]` table of the config file says how to send it).
    /// [default: true]
    #[arg(long, env = "FIRSTCOME_MAIL_ENABLED")]
    mail_enabled: Option<bool>,
    /// The SMTP password, kept out of the config file.
    #[arg(long, env = "FIRSTCOME_SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("FIRSTCOME_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let Command::Serve(args) = cli.command;
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
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let file = match &args.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
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
        mail: None,
    };
    let mut mail = file.mail.clone().unwrap_or_default();
    if let Some(on) = args.mail_enabled {
        mail.enabled = on;
    }
    if let (Some(p), Some(smtp)) = (args.smtp_password, mail.smtp.as_mut()) {
        smtp.password = Some(p);
    }
    let overrides = FileConfig {
        mail: Some(mail),
        ..overrides
    };
    let config = Config::merge(file, overrides)?;
    let server = Server::start(config).await?;
    if !server.generated_keys.is_empty() {
        // Printed once, on the start that generated them; they stay in the data dir.
        println!("generated API keys (kept in the data dir, printed only now):");
        for (scope, key) in &server.generated_keys {
            println!("  {scope}: {key}");
        }
    }
    println!("firstcome listening on http://{}", server.addr);
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    server.shutdown().await;
    tracing::info!("stopped; everything acknowledged is durable");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
