//! The two ways mail leaves: SMTP (lettre's SMTP client over sockets and a pool of our
//! own), or .eml files (lettre's file transport).
//!
//! Why not lettre's `AsyncSmtpTransport`: lettre 0.11.23 opens its sockets without
//! TCP_NODELAY. `AsyncSmtpConnection::message` writes the body, then `\r\n.\r\n` as a
//! second small write; Nagle holds that write until the server acknowledges the body,
//! and the server delays its ACK (40 ms on Linux) because it has nothing to say before
//! the terminator. Every mail cost about 40 ms, whatever the server: 8 workers made
//! about 200 mails/s. lettre fixed this upstream (PR #1159) after 0.11.23.
//!
//! Until a release has it, this module opens the TCP connection itself, sets
//! TCP_NODELAY, and hands the stream to lettre through
//! [`AsyncSmtpConnection::connect_with_transport`], lettre's public entry for SMTP over
//! a caller's stream. The SMTP dialogue (greeting, EHLO, STARTTLS, AUTH, the DATA
//! encoding, reply parsing and error kinds) stays lettre's; only the socket and the
//! pool are ours. The pool has to be ours because lettre's pool only holds connections
//! that lettre opened.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::{MailError, SmtpConfig, SmtpSecurity, TransportConfig};

/// An idle connection older than this is closed rather than reused: lettre's own pool
/// default, and well below the 5 minutes after which RFC 5321 lets a server drop an
/// idle client.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) enum MailTransport {
    Smtp(Arc<SmtpPool>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

impl MailTransport {
    pub(crate) fn new(cfg: &TransportConfig) -> Result<MailTransport, MailError> {
        match cfg {
            TransportConfig::Files { dir } => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    MailError::Config(format!("cannot create the mail dir {}: {e}", dir.display()))
                })?;
                Ok(MailTransport::Files(AsyncFileTransport::new(dir)))
            }
            TransportConfig::Smtp(smtp) => Ok(MailTransport::Smtp(Arc::new(SmtpPool::new(smtp)?))),
        }
    }

    pub(crate) async fn send(&self, message: Message) -> Result<(), MailError> {
        match self {
            MailTransport::Files(t) => {
                t.send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| MailError::Send {
                        permanent: false,
                        unreachable: false,
                        detail: e.to_string(),
                    })
            }
            MailTransport::Smtp(pool) => pool.send(&message).await,
        }
    }
}

/// How a connection is secured, with the TLS configuration built once (lettre's, from
/// `TlsParameters::new`: the same roots and checks as before).
enum Security {
    None,
    /// STARTTLS, required: a server that does not offer it is an error, never plain text.
    StartTls(TlsParameters),
    /// TLS from the first byte (SMTPS).
    Tls(TlsParameters),
}

/// SMTP connections to one server: at most `pool_max` open at once, reused while they
/// stay healthy.
pub(crate) struct SmtpPool {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    /// The EHLO name: lettre's default (this host's name), computed once.
    hello: ClientId,
    /// Bounds each TCP connect (per resolved address, as lettre does).
    connect_timeout: Duration,
    /// The deadline of one whole send: waiting for a slot, connecting, TLS, AUTH and the
    /// transaction. Nothing below it has a timeout of its own, so this is what keeps a
    /// worker from ever being stuck on a silent server.
    deadline: Duration,
    /// One permit per connection that may be open. A send holds one from before it takes
    /// or opens a connection until it is done with it, and opens a connection only when
    /// none is idle, so open connections (in use + idle) never exceed `pool_max`.
    slots: Semaphore,
    max: usize,
    /// Healthy connections between sends, the most recently used last (taken first: the
    /// least likely to have been closed by the server).
    idle: Mutex<Vec<Idle>>,
    /// Whether the task that closes long-idle connections has been started (lazily, on
    /// the first connection parked, so that building a transport needs no runtime).
    reaper: AtomicBool,
}

/// One SMTP session.
struct Conn {
    smtp: AsyncSmtpConnection,
    /// A duplicate of the socket's descriptor, only ever peeked at: it tells whether the
    /// server closed (or wrote to) the connection while it was idle, without the NOOP
    /// round trip lettre's pool spends on every reuse.
    probe: std::net::TcpStream,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl SmtpPool {
    fn new(cfg: &SmtpConfig) -> Result<SmtpPool, MailError> {
        let tls = || {
            TlsParameters::new(cfg.host.clone())
                .map_err(|e| MailError::Config(format!("TLS for {}: {e}", cfg.host)))
        };
        let security = match cfg.security {
            SmtpSecurity::None => Security::None,
            SmtpSecurity::StartTls => Security::StartTls(tls()?),
            SmtpSecurity::Tls => Security::Tls(tls()?),
        };
        let max = cfg.pool_max.max(1) as usize;
        Ok(SmtpPool {
            host: cfg.host.clone(),
            port: cfg.port,
            security,
            credentials: match (&cfg.username, &cfg.password) {
                (Some(user), Some(pass)) => Some(Credentials::new(user.clone(), pass.clone())),
                _ => None,
            },
            hello: ClientId::default(),
            connect_timeout: cfg.timeout,
            deadline: cfg.send_timeout,
            slots: Semaphore::new(max),
            max,
            idle: Mutex::new(Vec::with_capacity(max)),
            reaper: AtomicBool::new(false),
        })
    }

    async fn send(self: &Arc<Self>, message: &Message) -> Result<(), MailError> {
        let raw = message.formatted();
        match tokio::time::timeout(self.deadline, self.send_raw(message.envelope(), &raw)).await {
            Ok(result) => result,
            // The send's future is dropped, and the connection with it: a session cut off
            // mid-transaction is never returned to the pool.
            Err(_) => Err(MailError::Send {
                permanent: false,
                unreachable: true,
                detail: format!("no answer within {:?}", self.deadline),
            }),
        }
    }

    async fn send_raw(self: &Arc<Self>, envelope: &Envelope, raw: &[u8]) -> Result<(), MailError> {
        let _slot = self.slots.acquire().await.map_err(|_| MailError::Send {
            // The semaphore is never closed; this only keeps a bug from panicking.
            permanent: false,
            unreachable: true,
            detail: "the SMTP pool is closed".into(),
        })?;
        let mut conn = match self.take_idle() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let result = conn.smtp.send(envelope, raw).await;
        // On a server's refusal lettre has already sent QUIT and closed the session
        // (`has_broken`); a connection still whole (a refusal lettre made before sending
        // anything) serves the next mail.
        if !conn.smtp.has_broken() {
            self.park(conn);
        }
        result.map(|_| ()).map_err(|e| smtp_error(&e))
    }

    fn lock_idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        // The critical sections only push and pop: a panic inside one cannot leave the
        // list inconsistent, so a poisoned lock is still good.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle connection that is still good; stale ones are closed
    /// on the way.
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.lock_idle();
        while let Some(Idle { conn, since }) = idle.pop() {
            if since.elapsed() < IDLE_TIMEOUT && conn.is_quiet() {
                return Some(conn);
            }
        }
        None
    }

    fn park(self: &Arc<Self>, conn: Conn) {
        self.start_reaper();
        let mut idle = self.lock_idle();
        if idle.len() < self.max {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Closes connections idle for longer than [`IDLE_TIMEOUT`] (with a QUIT, as lettre's
    /// pool does), so that a quiet mailer holds no sessions open on the server. The task
    /// holds the pool weakly and ends with it.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(IDLE_TIMEOUT / 4).await;
                let Some(p) = pool.upgrade() else { return };
                let stale: Vec<Idle> = {
                    let mut idle = p.lock_idle();
                    let (stale, keep) = idle
                        .drain(..)
                        .partition(|i: &Idle| i.since.elapsed() >= IDLE_TIMEOUT);
                    *idle = keep;
                    stale
                };
                let timeout = p.connect_timeout;
                drop(p);
                for mut i in stale {
                    let _ = tokio::time::timeout(timeout, i.conn.smtp.abort()).await;
                }
            }
        });
    }

    /// A new session: TCP with TCP_NODELAY, then lettre's greeting and EHLO, STARTTLS or
    /// TLS as configured, and AUTH when there are credentials (lettre's mechanisms, PLAIN
    /// then LOGIN) — the steps and their order of lettre's own `AsyncSmtpTransport`.
    async fn connect(&self) -> Result<Conn, MailError> {
        let (tcp, probe) = self.open_tcp().await.map_err(|e| MailError::Send {
            permanent: false,
            unreachable: true,
            detail: format!("Connection error: {e}"),
        })?;
        let mut smtp = match &self.security {
            Security::None => {
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await
            }
            Security::StartTls(tls) => {
                match AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await
                {
                    Ok(mut conn) => conn.starttls(tls.clone(), &self.hello).await.map(|()| conn),
                    Err(e) => Err(e),
                }
            }
            Security::Tls(tls) => match ImplicitTls::handshake(tcp, tls.clone()).await {
                Ok(stream) => {
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello).await
                }
                Err(e) => Err(e),
            },
        }
        .map_err(|e| smtp_error(&e))?;
        if let Some(credentials) = &self.credentials {
            smtp.auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(|e| smtp_error(&e))?;
        }
        Ok(Conn { smtp, probe })
    }

    /// Connects to each resolved address in turn, each within the connect timeout (as
    /// lettre does), and returns the stream with TCP_NODELAY set, and its probe.
    async fn open_tcp(&self) -> io::Result<(TcpStream, std::net::TcpStream)> {
        let mut last = None;
        for addr in tokio::net::lookup_host((self.host.as_str(), self.port)).await? {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => return with_probe(stream),
                Ok(Err(e)) => last = Some(e),
                Err(_) => {
                    last = Some(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connection timed out",
                    ))
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "could not resolve to any address")
        }))
    }
}

/// Sets TCP_NODELAY (the point of this module: see its header) and splits off the probe.
fn with_probe(stream: TcpStream) -> io::Result<(TcpStream, std::net::TcpStream)> {
    stream.set_nodelay(true)?;
    // A duplicate descriptor shares the socket (and its options and non-blocking mode),
    // so peeking at it sees exactly what lettre's stream would read.
    let std = stream.into_std()?;
    let probe = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, probe))
}

impl Conn {
    /// Whether nothing has arrived on the idle connection: between transactions an SMTP
    /// server says nothing, so an end of stream (the server went away or timed us out),
    /// a reset, or any byte (a 421 before closing) means it cannot be used.
    fn is_quiet(&self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.probe.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// The classes the dispatcher acts on, as before: 5xx is permanent; anything but a
/// malformed reply also counts as the server being unreachable (which pauses sending).
fn smtp_error(e: &lettre::transport::smtp::Error) -> MailError {
    MailError::Send {
        permanent: e.is_permanent(),
        unreachable: !e.is_response(),
        detail: e.to_string(),
    }
}

/// An SMTPS stream for `connect_with_transport`, which starts reading the greeting at
/// once, so the TLS handshake must be done before. The handshake is lettre's own
/// (`upgrade_tls` with the configured `TlsParameters`: the same rustls configuration,
/// roots and hostname check as lettre's transport), reached through
/// `AsyncNetworkStream`, which lettre 0.11 still exports but marks deprecated ("not
/// meant to be made public"). It is the only public way to run lettre's TLS over our
/// socket; the alternative, a rustls configuration of our own, would be a second TLS
/// setup to keep equal to lettre's. This wrapper only adapts its futures-io traits to
/// the tokio ones `AsyncTokioStream` requires.
#[allow(deprecated)]
#[derive(Debug)]
struct ImplicitTls(AsyncNetworkStream);

impl ImplicitTls {
    #[allow(deprecated)]
    async fn handshake(
        tcp: TcpStream,
        tls: TlsParameters,
    ) -> Result<ImplicitTls, lettre::transport::smtp::Error> {
        let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
        stream.upgrade_tls(tls).await?;
        Ok(ImplicitTls(stream))
    }
}

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(futures::io::AsyncRead::poll_read(
            Pin::new(&mut self.0),
            cx,
            buf.initialize_unfilled()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures::io::AsyncWrite::poll_close(Pin::new(&mut self.0), cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use lettre::transport::smtp::client::Certificate;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

    use super::*;

    /// A self-signed certificate for `localhost` (P-256, valid until 2126) and its key,
    /// made with openssl for these tests only: the TLS server below presents it, and the
    /// client trusts it as its one extra root.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBkjCCATigAwIBAgIUbU6PVOCoH5TgIW93EZpgadoM8ucwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwMjA2MTUyOVoYDzIxMjYxMTA4
MDYxNTI5WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQ12G1zNP7QLLvUxEbfI4L+zsHUy9GrzBh2hoHNEC+flKIL+3h+pRAt
Q6BMWV/76RYXfZH85Iy9S7wuebOLOFJ2o2YwZDAdBgNVHQ4EFgQUjRw/MdVhnPi4
JK05xlCF2M91KzAwHwYDVR0jBBgwFoAUjRw/MdVhnPi4JK05xlCF2M91KzAwFAYD
VR0RBA0wC4IJbG9jYWxob3N0MAwGA1UdEwEB/wQCMAAwCgYIKoZIzj0EAwIDSAAw
RQIgQBzKG4BAJ800DT+FH9l0EqyzUKbxWD7I3cmnnBjMLvUCIQD8fDIXSwcEStCK
TxWKC/UHV3NQroUsyGhE5b5kZmA71g==
-----END CERTIFICATE-----
";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+AZHLFASsh6Ou4U3
XKl7zIvCUlCl9OTpF0Iui3QDJTKhRANCAAQ12G1zNP7QLLvUxEbfI4L+zsHUy9Gr
zBh2hoHNEC+flKIL+3h+pRAtQ6BMWV/76RYXfZH85Iy9S7wuebOLOFJ2
-----END PRIVATE KEY-----
";

    /// `AUTH PLAIN` with user "u" and password "p": base64 of "\0u\0p".
    const AUTH_U_P: &str = "AUTH PLAIN AHUAcA==";

    #[tokio::test]
    async fn every_security_mode_builds_a_transport() {
        // Builds the rustls configuration for STARTTLS and TLS (no connection is made):
        // a missing or ambiguous crypto provider would fail here, not at the first mail.
        for security in [
            SmtpSecurity::None,
            SmtpSecurity::StartTls,
            SmtpSecurity::Tls,
        ] {
            let cfg = TransportConfig::Smtp(SmtpConfig {
                host: "smtp.example.com".into(),
                port: 587,
                security: security.clone(),
                username: Some("u".into()),
                password: Some("p".into()),
                timeout: Duration::from_secs(1),
                pool_max: 2,
                send_timeout: Duration::from_secs(2),
            });
            assert!(MailTransport::new(&cfg).is_ok(), "{security:?}");
        }
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Mode {
        Plain,
        StartTls,
        Tls,
    }

    #[derive(Default)]
    struct Stats {
        connections: AtomicUsize,
        mails: AtomicUsize,
        /// Correct AUTH commands received over TLS, and AUTH commands in plain text.
        auth_encrypted: AtomicUsize,
        auth_plain: AtomicUsize,
    }

    /// A minimal SMTP server on loopback: accepts everything and counts. `close_idle`
    /// closes each session after its first mail, as a server going away between
    /// transactions would.
    struct Server {
        port: u16,
        stats: Arc<Stats>,
    }

    fn acceptor() -> TlsAcceptor {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap(),
            )
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }

    impl Server {
        async fn start(mode: Mode, close_idle: bool) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let stats = Arc::new(Stats::default());
            let s = stats.clone();
            tokio::spawn(async move {
                let tls = acceptor();
                loop {
                    let (tcp, _) = listener.accept().await.unwrap();
                    s.connections.fetch_add(1, Ordering::SeqCst);
                    let (s, tls) = (s.clone(), tls.clone());
                    tokio::spawn(async move {
                        match mode {
                            Mode::Plain => {
                                session(tcp, Phase::Plain, &s, close_idle).await;
                            }
                            Mode::Tls => {
                                let tcp = tls.accept(tcp).await.unwrap();
                                session(tcp, Phase::Tls, &s, close_idle).await;
                            }
                            Mode::StartTls => {
                                if let Some(tcp) =
                                    session(tcp, Phase::BeforeStartTls, &s, close_idle).await
                                {
                                    let tcp = tls.accept(tcp).await.unwrap();
                                    session(tcp, Phase::AfterStartTls, &s, close_idle).await;
                                }
                            }
                        }
                    });
                }
            });
            Server { port, stats }
        }

        fn pool(&self, pool_max: u32, credentials: bool) -> SmtpPool {
            SmtpPool::new(&SmtpConfig {
                host: "127.0.0.1".into(),
                port: self.port,
                security: SmtpSecurity::None,
                username: credentials.then(|| "u".into()),
                password: credentials.then(|| "p".into()),
                timeout: Duration::from_secs(2),
                pool_max,
                send_timeout: Duration::from_secs(10),
            })
            .unwrap()
        }

        fn transport(&self, pool_max: u32) -> MailTransport {
            MailTransport::Smtp(Arc::new(self.pool(pool_max, false)))
        }

        fn count(&self, what: fn(&Stats) -> &AtomicUsize) -> usize {
            what(&self.stats).load(Ordering::SeqCst)
        }
    }

    /// What a session on one stream is: whether it greets, is encrypted, offers STARTTLS.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Phase {
        Plain,
        Tls,
        BeforeStartTls,
        /// The same session after the handshake: no second greeting.
        AfterStartTls,
    }

    /// One SMTP session on `stream`. Returns the stream when the client asked for
    /// STARTTLS (and was told to go ahead), for the caller to wrap in TLS.
    async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        stream: S,
        phase: Phase,
        stats: &Stats,
        close_idle: bool,
    ) -> Option<S> {
        let greet = phase != Phase::AfterStartTls;
        let encrypted = matches!(phase, Phase::Tls | Phase::AfterStartTls);
        let offer_starttls = phase == Phase::BeforeStartTls;
        let mut stream = BufReader::new(stream);
        if greet {
            stream.write_all(b"220 test ESMTP\r\n").await.unwrap();
        }
        let mut in_data = false;
        let mut line = String::new();
        loop {
            line.clear();
            match stream.read_line(&mut line).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let command = line.trim_end();
            let reply: &str = if in_data {
                if command != "." {
                    continue;
                }
                in_data = false;
                stats.mails.fetch_add(1, Ordering::SeqCst);
                "250 queued\r\n"
            } else {
                match command.get(..4).map(str::to_ascii_uppercase).as_deref() {
                    Some("EHLO") if offer_starttls => "250-test\r\n250 STARTTLS\r\n",
                    Some("EHLO") => "250-test\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN\r\n",
                    Some("STAR") => {
                        stream.write_all(b"220 go ahead\r\n").await.unwrap();
                        // The client waits for that reply before its handshake: nothing
                        // is buffered, so the inner stream is where the handshake is.
                        return Some(stream.into_inner());
                    }
                    Some("AUTH") => {
                        if !encrypted {
                            stats.auth_plain.fetch_add(1, Ordering::SeqCst);
                        } else if command == AUTH_U_P {
                            stats.auth_encrypted.fetch_add(1, Ordering::SeqCst);
                        }
                        "235 welcome\r\n"
                    }
                    Some("DATA") => {
                        in_data = true;
                        "354 go on\r\n"
                    }
                    Some("QUIT") => {
                        let _ = stream.write_all(b"221 bye\r\n").await;
                        return None;
                    }
                    _ => "250 ok\r\n",
                }
            };
            if stream.write_all(reply.as_bytes()).await.is_err() {
                return None;
            }
            if close_idle && reply.starts_with("250 queued") {
                return None; // dropping the stream closes the connection
            }
        }
    }

    fn message(i: usize) -> Message {
        Message::builder()
            .from("shop <c@shop.test>".parse().unwrap())
            .to(format!("u{i}@example.com").parse().unwrap())
            .subject("hello")
            .body(format!("mail {i}\r\n.leading dot\r\n"))
            .unwrap()
    }

    fn first_idle_has_nodelay(pool: &SmtpPool) -> bool {
        pool.lock_idle()[0].conn.probe.nodelay().unwrap()
    }

    #[tokio::test]
    async fn connections_have_nodelay_and_are_reused() {
        let server = Server::start(Mode::Plain, false).await;
        let t = server.transport(4);
        let started = Instant::now();
        for i in 0..20 {
            t.send(message(i)).await.unwrap();
        }
        let took = started.elapsed();
        assert_eq!(server.count(|s| &s.mails), 20);
        assert_eq!(server.count(|s| &s.connections), 1, "one session");
        let MailTransport::Smtp(pool) = &t else {
            unreachable!()
        };
        assert!(first_idle_has_nodelay(pool), "TCP_NODELAY is set");
        // With Nagle on, each mail waits for the server's delayed ACK (40 ms): 800 ms
        // for these 20. Without, a few milliseconds each even on a busy machine.
        assert!(took < Duration::from_millis(400), "20 mails took {took:?}");
    }

    #[tokio::test]
    async fn starttls_and_smtps_carry_auth_and_the_mail_over_tls() {
        let tls = TlsParameters::builder("localhost".into())
            .add_root_certificate(Certificate::from_pem(CERT.as_bytes()).unwrap())
            .build()
            .unwrap();
        for (mode, security) in [
            (Mode::StartTls, Security::StartTls(tls.clone())),
            (Mode::Tls, Security::Tls(tls.clone())),
        ] {
            let server = Server::start(mode, false).await;
            let mut pool = server.pool(2, true);
            pool.security = security;
            let pool = Arc::new(pool);
            for i in 0..3 {
                pool.send(&message(i)).await.unwrap();
            }
            assert_eq!(server.count(|s| &s.mails), 3, "{mode:?}");
            assert_eq!(server.count(|s| &s.connections), 1, "{mode:?}");
            assert_eq!(server.count(|s| &s.auth_encrypted), 1, "{mode:?}");
            assert_eq!(server.count(|s| &s.auth_plain), 0, "{mode:?}");
            assert!(first_idle_has_nodelay(&pool), "{mode:?}");
        }
    }

    #[tokio::test]
    async fn starttls_required_refuses_a_server_without_it() {
        // A plain server that offers no STARTTLS: the mail must not go out in the clear.
        let server = Server::start(Mode::Plain, false).await;
        let mut pool = server.pool(1, true);
        pool.security = Security::StartTls(TlsParameters::new("localhost".into()).unwrap());
        let pool = Arc::new(pool);
        assert!(pool.send(&message(0)).await.is_err());
        assert_eq!(server.count(|s| &s.mails), 0);
        assert_eq!(server.count(|s| &s.auth_plain), 0);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_while_idle_is_replaced_without_a_failure() {
        let server = Server::start(Mode::Plain, true).await;
        let t = server.transport(4);
        for i in 0..5 {
            t.send(message(i)).await.unwrap();
            // Let the server's close arrive before the next send takes the connection.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(server.count(|s| &s.mails), 5);
        assert_eq!(server.count(|s| &s.connections), 5);
    }

    #[tokio::test]
    async fn no_more_than_pool_max_connections_are_open() {
        let server = Server::start(Mode::Plain, false).await;
        let t = Arc::new(server.transport(2));
        let sends: Vec<_> = (0..16)
            .map(|i| {
                let t = t.clone();
                tokio::spawn(async move { t.send(message(i)).await })
            })
            .collect();
        for s in sends {
            s.await.unwrap().unwrap();
        }
        assert_eq!(server.count(|s| &s.mails), 16);
        assert!(server.count(|s| &s.connections) <= 2);
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable_and_transient() {
        // Bind then drop: a loopback port that refuses connections.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Server {
            port,
            stats: Default::default(),
        }
        .transport(1);
        match t.send(message(0)).await {
            Err(MailError::Send {
                permanent: false,
                unreachable: true,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }
}
