//! A real SMTP server inside the test process, on loopback, for the mailer's tests.
//!
//! Plain SMTP only (no TLS, no AUTH). The SMTP dialogue is mailin-embedded's; what it
//! accepts is recorded, parsed with mail-parser, and readable through [`SmtpServer`].
//!
//! Layout: mailin-embedded serves on a private loopback listener, and a small TCP relay
//! owned by this module listens on the public port and forwards each connection to it.
//! mailin-embedded has no way to stop (its accept loop runs forever and the listener
//! and the sessions live inside it), while a test needs a server that really goes
//! down: connections refused, and open (pooled) connections dropped. The relay gives
//! exactly that: [`SmtpServer::stop`] closes the public listener and shuts down every
//! relayed connection. The mailin-embedded instance behind it is then ended too (see
//! [`SmtpHandler`]'s `Clone`), so a stopped server leaves no threads behind.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, PartType};
use mailin_embedded::response::{NO_MAILBOX, OK};
use mailin_embedded::{Handler, Response, Server};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Concurrent SMTP sessions the server can hold. mailin-embedded serves each session
/// on a fixed-size thread pool and queues connections beyond it (a queued client
/// waits for its greeting), so keep it above any client pool size used in tests.
const SESSION_THREADS: u32 = 32;

/// A bound on the waits inside `stop` and `start_on`, so a bug fails the test instead
/// of hanging it.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// How the server answers transactions (set with [`SmtpServer::set_behaviour`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Accept every transaction (`250` throughout).
    Accept,
    /// `451` to DATA: a transient failure; the recipients were accepted, nothing is
    /// recorded.
    Transient,
    /// `550` to every RCPT TO: a permanent failure (so DATA then gets `503`).
    Reject,
}

/// A message accepted by the server: complete, since it is recorded only once the
/// final `.` of DATA has arrived.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The Message-ID header, without angle brackets ("" when absent).
    pub message_id: String,
    /// The envelope sender (MAIL FROM), without angle brackets.
    pub from: String,
    /// The envelope recipients that were accepted (RCPT TO), in order.
    pub to: Vec<String>,
    /// The decoded Subject header ("" when absent).
    pub subject: String,
    /// The decoded text/plain body ("" when the message has none).
    pub text: String,
    /// The decoded text/html body, if the message has one.
    pub html: Option<String>,
    /// The message as received in DATA (dot-unstuffed, CRLF line endings).
    pub raw: Vec<u8>,
    /// The top-level headers in order: name as mail-parser spells it, value raw (not
    /// MIME-decoded), unfolded and trimmed.
    pub headers: Vec<(String, String)>,
}

impl ReceivedMail {
    /// The first top-level header called `name` (case-insensitive), raw as in `headers`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn parse(from: String, to: Vec<String>, raw: Vec<u8>) -> ReceivedMail {
        let mut mail = ReceivedMail {
            message_id: String::new(),
            from,
            to,
            subject: String::new(),
            text: String::new(),
            html: None,
            raw: Vec::new(),
            headers: Vec::new(),
        };
        if let Some(message) = MessageParser::default().parse(&raw) {
            mail.message_id = message.message_id().unwrap_or_default().to_owned();
            mail.subject = message.subject().unwrap_or_default().to_owned();
            // `body_text`/`body_html` would convert one into the other when only one
            // exists; take only parts that really are text/plain and text/html.
            mail.text = message
                .text_bodies()
                .find_map(|part| match &part.body {
                    PartType::Text(text) => Some(text.to_string()),
                    _ => None,
                })
                .unwrap_or_default();
            mail.html = message.html_bodies().find_map(|part| match &part.body {
                PartType::Html(html) => Some(html.to_string()),
                _ => None,
            });
            mail.headers = message
                .headers_raw()
                .map(|(name, value)| (name.to_owned(), unfold(value)))
                .collect();
        }
        mail.raw = raw;
        mail
    }
}

/// RFC 5322 unfolding (drop the CRLF before continuation whitespace), then trim.
fn unfold(value: &str) -> String {
    value
        .replace("\r\n", "")
        .replace('\n', "")
        .trim()
        .to_owned()
}

/// What the handlers of all connections share.
struct Shared {
    state: Mutex<State>,
}

struct State {
    behaviour: Behaviour,
    rejected: HashSet<String>,
    received: Vec<ReceivedMail>,
    attempts: usize,
    connections: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not make the server fail in turn.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The mailin-embedded handler: cloned by mailin-embedded for every connection, so
/// per-transaction state is per clone and everything else is behind `shared`.
struct SmtpHandler {
    shared: Arc<Shared>,
    /// Set by `stop`: the next clone ends mailin-embedded's accept loop.
    stopping: Arc<AtomicBool>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

/// The payload of the unwind that ends mailin-embedded's accept loop.
struct StopServing;

impl Clone for SmtpHandler {
    /// mailin-embedded clones the handler in its accept loop, once per accepted
    /// connection, and offers no other way out of that loop. Once `stopping` is set,
    /// cloning unwinds (`resume_unwind`: no panic hook, so no message) out of the
    /// loop; on the way out mailin-embedded waits for its running sessions (already
    /// cut off by the relay), stops its thread pool and closes its listener.
    fn clone(&self) -> Self {
        if self.stopping.load(Ordering::SeqCst) {
            std::panic::resume_unwind(Box::new(StopServing));
        }
        SmtpHandler {
            shared: Arc::clone(&self.shared),
            stopping: Arc::clone(&self.stopping),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl Handler for SmtpHandler {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.shared.lock().attempts += 1;
        self.from = from.to_owned();
        self.to.clear();
        self.data.clear();
        OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let state = self.shared.lock();
        if state.behaviour == Behaviour::Reject || state.rejected.contains(&to.to_lowercase()) {
            NO_MAILBOX
        } else {
            OK
        }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        if self.shared.lock().behaviour == Behaviour::Transient {
            return Response::custom(451, "4.3.0 Temporary failure, try again later".into());
        }
        // Only the accepted recipients reach here.
        self.to = to.to_vec();
        self.data.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = ReceivedMail::parse(
            std::mem::take(&mut self.from),
            std::mem::take(&mut self.to),
            std::mem::take(&mut self.data),
        );
        self.shared.lock().received.push(mail);
        OK
    }
}

/// The open relayed connections (both sockets of each), so `stop` can cut them.
/// `None` once stopped: a connection registered after that is shut down at once.
#[derive(Default)]
struct Relays {
    open: Mutex<Option<HashMap<u64, Vec<TcpStream>>>>,
}

impl Relays {
    fn lock(&self) -> MutexGuard<'_, Option<HashMap<u64, Vec<TcpStream>>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a handle on `stream` for `stop`; false (and `stream` shut down) if
    /// already stopped.
    fn register(&self, id: u64, stream: &TcpStream) -> bool {
        let mut open = self.lock();
        match (open.as_mut(), stream.try_clone()) {
            (Some(map), Ok(clone)) => {
                map.entry(id).or_default().push(clone);
                true
            }
            _ => {
                let _ = stream.shutdown(Shutdown::Both);
                false
            }
        }
    }

    fn forget(&self, id: u64) {
        if let Some(map) = self.lock().as_mut() {
            map.remove(&id);
        }
    }

    fn close_all(&self) {
        let closed = self.lock().take();
        for stream in closed.into_iter().flat_map(HashMap::into_values).flatten() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// The threads of a running server and what stops them.
struct Running {
    /// The public listener's accept loop (the relay).
    relay: JoinHandle<()>,
    relay_stopping: Arc<AtomicBool>,
    relays: Arc<Relays>,
    /// mailin-embedded's `serve`.
    smtp: JoinHandle<()>,
    smtp_addr: SocketAddr,
    smtp_stopping: Arc<AtomicBool>,
}

struct Inner {
    port: u16,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

impl Inner {
    fn shutdown(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(running) = running else { return };
        let public = SocketAddr::new(LOOPBACK, self.port);

        // 1. Stop accepting: the relay's accept loop drops the public listener when it
        //    sees the flag; a connection wakes it up. From then on: connection refused.
        running.relay_stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&public, CONTROL_TIMEOUT);
        join_within(running.relay, "the relay's accept loop");

        // 2. Cut every open connection, idle pooled ones included, as a crashed server
        //    would (the client sees EOF). Mail in mid-DATA is not recorded.
        running.relays.close_all();

        // 3. End mailin-embedded: the next connection it accepts makes its accept loop
        //    unwind (see `SmtpHandler::clone`).
        running.smtp_stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&running.smtp_addr, CONTROL_TIMEOUT);
        join_within(running.smtp, "mailin-embedded's server");
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Joins `thread`, failing loudly rather than hanging if it does not end in time. Its
/// result is ignored: mailin-embedded's thread ends by unwinding on purpose.
fn join_within(thread: JoinHandle<()>, what: &str) {
    let deadline = Instant::now() + CONTROL_TIMEOUT;
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            if thread::panicking() {
                return; // already failing: do not abort with a double panic
            }
            panic!("SMTP test server: {what} did not stop within {CONTROL_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(1));
    }
    let _ = thread.join();
}

/// A handle on an SMTP server listening on 127.0.0.1. Clones share the server; it
/// runs until [`stop`](SmtpServer::stop) or until the last handle is dropped.
#[derive(Clone)]
pub struct SmtpServer {
    inner: Arc<Inner>,
}

impl SmtpServer {
    /// A server on a free port, listening when this returns.
    pub fn start() -> SmtpServer {
        let listener = TcpListener::bind((LOOPBACK, 0)).expect("bind 127.0.0.1:0");
        SmtpServer::serve(listener)
    }

    /// A server on `port` (typically the port of a server stopped earlier, or of
    /// [`free_port`]), listening when this returns. Retries briefly if the port is
    /// still taken.
    pub fn start_on(port: u16) -> SmtpServer {
        let deadline = Instant::now() + CONTROL_TIMEOUT;
        loop {
            match TcpListener::bind((LOOPBACK, port)) {
                Ok(listener) => return SmtpServer::serve(listener),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("SMTP test server: cannot bind 127.0.0.1:{port}: {e}"),
            }
        }
    }

    fn serve(public: TcpListener) -> SmtpServer {
        let port = public.local_addr().expect("listener address").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                behaviour: Behaviour::Accept,
                rejected: HashSet::new(),
                received: Vec::new(),
                attempts: 0,
                connections: 0,
            }),
        });

        // mailin-embedded, on a private port only the relay connects to.
        let private = TcpListener::bind((LOOPBACK, 0)).expect("bind 127.0.0.1:0");
        let smtp_addr = private.local_addr().expect("listener address");
        let smtp_stopping = Arc::new(AtomicBool::new(false));
        let handler = SmtpHandler {
            shared: Arc::clone(&shared),
            stopping: Arc::clone(&smtp_stopping),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        let mut server = Server::new(handler);
        server
            .with_name("smtp.test")
            .with_num_threads(SESSION_THREADS)
            .with_tcp_listener(private);
        let smtp = thread::Builder::new()
            .name(format!("smtp-test-{port}"))
            .spawn(move || {
                // Returns only by the unwind that `stop` causes (or on an error).
                let _ = server.serve();
            })
            .expect("spawn SMTP server thread");

        // The relay, on the public port.
        let relay_stopping = Arc::new(AtomicBool::new(false));
        let relays = Arc::new(Relays {
            open: Mutex::new(Some(HashMap::new())),
        });
        let relay = {
            let stopping = Arc::clone(&relay_stopping);
            let relays = Arc::clone(&relays);
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("smtp-test-relay-{port}"))
                .spawn(move || accept_loop(public, smtp_addr, &stopping, &relays, &shared))
                .expect("spawn SMTP relay thread")
        };

        SmtpServer {
            inner: Arc::new(Inner {
                port,
                shared,
                running: Mutex::new(Some(Running {
                    relay,
                    relay_stopping,
                    relays,
                    smtp,
                    smtp_addr,
                    smtp_stopping,
                })),
            }),
        }
    }

    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// How later transactions are answered (one already past a step keeps its answer).
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.inner.shared.lock().behaviour = behaviour;
    }

    /// `550` to RCPT TO for `addr` (case-insensitive), until [`allow_recipient`].
    ///
    /// [`allow_recipient`]: SmtpServer::allow_recipient
    pub fn reject_recipient(&self, addr: &str) {
        self.inner
            .shared
            .lock()
            .rejected
            .insert(addr.to_lowercase());
    }

    pub fn allow_recipient(&self, addr: &str) {
        self.inner
            .shared
            .lock()
            .rejected
            .remove(&addr.to_lowercase());
    }

    /// Every message accepted so far, in order of acceptance.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.inner.shared.lock().received.clone()
    }

    /// Transactions attempted (MAIL FROM commands), refused ones included.
    pub fn attempts(&self) -> usize {
        self.inner.shared.lock().attempts
    }

    /// TCP connections accepted on the public port (a client's connection pooling
    /// shows here).
    pub fn connections(&self) -> usize {
        self.inner.shared.lock().connections
    }

    /// Waits until at least `n` messages were accepted and returns them all; panics
    /// after `timeout` with how many arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            if tokio::time::Instant::now() >= deadline {
                let subjects: Vec<&str> = received.iter().map(|m| m.subject.as_str()).collect();
                panic!(
                    "SMTP test server on port {}: expected at least {n} mails within {timeout:?}, \
                     got {} (attempts: {}, subjects: {subjects:?})",
                    self.port(),
                    received.len(),
                    self.attempts(),
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Takes the server down: the port refuses connections (and is free for
    /// [`start_on`](SmtpServer::start_on)), and open connections are closed. What was
    /// received stays readable through other clones of this handle.
    pub fn stop(self) {
        self.inner.shutdown();
    }
}

/// The relay's accept loop: each connection to the public port is relayed to
/// mailin-embedded until either side closes or `stop` cuts it.
fn accept_loop(
    public: TcpListener,
    smtp_addr: SocketAddr,
    stopping: &AtomicBool,
    relays: &Arc<Relays>,
    shared: &Shared,
) {
    let mut next_id = 0u64;
    for conn in public.incoming() {
        if stopping.load(Ordering::SeqCst) {
            break; // drops the listener: connections are refused from now on
        }
        let Ok(client) = conn else { continue };
        shared.lock().connections += 1;
        next_id += 1;
        let id = next_id;
        // Registered before this loop accepts again, so `stop` (which joins this loop
        // before cutting connections) cannot miss it.
        if !relays.register(id, &client) {
            continue;
        }
        let relays = Arc::clone(relays);
        let spawned = thread::Builder::new()
            .name(format!("smtp-test-conn-{id}"))
            .spawn(move || relay_connection(id, client, smtp_addr, &relays));
        // On a failed spawn the client sees the connection close.
        drop(spawned);
    }
}

fn relay_connection(id: u64, client: TcpStream, smtp_addr: SocketAddr, relays: &Relays) {
    let Ok(server) = TcpStream::connect(smtp_addr) else {
        let _ = client.shutdown(Shutdown::Both);
        relays.forget(id);
        return;
    };
    if relays.register(id, &server) {
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        if let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) {
            // Server to client on its own thread; when the server side ends (QUIT,
            // 421, stop) the client is shut down, which also ends the other direction.
            let back = thread::spawn(move || {
                let _ = io::copy(&mut &server2, &mut &client2);
                let _ = client2.shutdown(Shutdown::Both);
            });
            // Client to server here; the client's EOF is passed on as a half-close.
            let _ = io::copy(&mut &client, &mut &server);
            let _ = server.shutdown(Shutdown::Write);
            let _ = back.join();
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    relays.forget(id);
}

/// A port on 127.0.0.1 that nothing listens on (for a server that is down from the
/// start: connections are refused until `SmtpServer::start_on(port)`).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((LOOPBACK, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("listener address").port()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(2);

    /// A raw SMTP client: one command, one reply code.
    struct Client {
        reader: BufReader<TcpStream>,
        writer: TcpStream,
    }

    impl Client {
        fn connect(port: u16) -> Client {
            let stream = TcpStream::connect((LOOPBACK, port)).expect("connect");
            stream.set_read_timeout(Some(WAIT)).unwrap();
            let mut client = Client {
                reader: BufReader::new(stream.try_clone().unwrap()),
                writer: stream,
            };
            assert_eq!(client.reply(), 220, "greeting");
            client
        }

        /// Reads one (possibly multi-line) reply and returns its code.
        fn reply(&mut self) -> u16 {
            loop {
                let mut line = String::new();
                let n = self.reader.read_line(&mut line).expect("read reply");
                assert!(n > 0, "connection closed while waiting for a reply");
                assert!(line.len() >= 4, "short reply {line:?}");
                if line.as_bytes()[3] == b' ' {
                    return line[..3].parse().expect("reply code");
                }
            }
        }

        fn cmd(&mut self, line: &str) -> u16 {
            self.writer
                .write_all(format!("{line}\r\n").as_bytes())
                .unwrap();
            self.reply()
        }

        /// Sends a message (CRLF line endings, dot-stuffed here) after DATA's 354.
        fn data(&mut self, message: &str) -> u16 {
            let mut out = String::new();
            for line in message.lines() {
                if line.starts_with('.') {
                    out.push('.');
                }
                out.push_str(line);
                out.push_str("\r\n");
            }
            out.push_str(".\r\n");
            self.writer.write_all(out.as_bytes()).unwrap();
            self.reply()
        }

        /// True when the server has closed the connection.
        fn is_closed(&mut self) -> bool {
            let mut line = String::new();
            matches!(self.reader.read_line(&mut line), Ok(0) | Err(_))
        }
    }

    fn message(id: &str, subject: &str) -> String {
        format!(
            "From: Firstcome <shop@firstcome.test>\n\
             To: alice@example.com\n\
             Subject: {subject}\n\
             Message-ID: <{id}>\n\
             MIME-Version: 1.0\n\
             Content-Type: multipart/alternative; boundary=\"b1\"\n\
             \n\
             --b1\n\
             Content-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: quoted-printable\n\
             \n\
             Your code is ABC-123 =E2=9C=93\n\
             .a line that starts with a dot\n\
             --b1\n\
             Content-Type: text/html; charset=utf-8\n\
             \n\
             <p>Your code is <b>ABC-123</b></p>\n\
             --b1--\n"
        )
    }

    fn deliver(client: &mut Client, to: &[&str], id: &str, subject: &str) -> u16 {
        assert_eq!(client.cmd("MAIL FROM:<bounce@firstcome.test>"), 250);
        for rcpt in to {
            assert_eq!(client.cmd(&format!("RCPT TO:<{rcpt}>")), 250);
        }
        assert_eq!(client.cmd("DATA"), 354);
        client.data(&message(id, subject))
    }

    #[tokio::test]
    async fn accepts_and_parses_a_message() {
        let server = SmtpServer::start();
        let mut client = Client::connect(server.port());
        assert_eq!(client.cmd("EHLO client.test"), 250);
        let code = deliver(
            &mut client,
            &["alice@example.com"],
            "id-1@firstcome.test",
            "Hi",
        );
        assert_eq!(code, 250);
        assert_eq!(client.cmd("QUIT"), 221);

        let mails = server.wait_for(1, WAIT).await;
        assert_eq!(mails.len(), 1);
        let mail = &mails[0];
        assert_eq!(mail.message_id, "id-1@firstcome.test");
        assert_eq!(mail.from, "bounce@firstcome.test");
        assert_eq!(mail.to, ["alice@example.com"]);
        assert_eq!(mail.subject, "Hi");
        assert!(
            mail.text.contains("Your code is ABC-123 \u{2713}"),
            "{:?}",
            mail.text
        );
        assert!(
            mail.text.contains("\n.a line that starts with a dot"),
            "{:?}",
            mail.text
        );
        assert_eq!(
            mail.html.as_deref().map(str::trim),
            Some("<p>Your code is <b>ABC-123</b></p>")
        );
        assert_eq!(mail.header("message-id"), Some("<id-1@firstcome.test>"));
        assert_eq!(mail.header("From"), Some("Firstcome <shop@firstcome.test>"));
        assert!(
            mail.raw
                .starts_with(b"From: Firstcome <shop@firstcome.test>\r\n")
        );
        assert_eq!(server.attempts(), 1);
        assert_eq!(server.connections(), 1);

        // A plain text/plain message has text and no html.
        let mut client = Client::connect(server.port());
        assert_eq!(client.cmd("HELO client.test"), 250);
        assert_eq!(client.cmd("MAIL FROM:<bounce@firstcome.test>"), 250);
        assert_eq!(client.cmd("RCPT TO:<bob@example.com>"), 250);
        assert_eq!(client.cmd("DATA"), 354);
        assert_eq!(
            client.data("Subject: plain\nMessage-ID: <id-2@x>\n\nJust text.\n"),
            250
        );
        let mails = server.wait_for(2, WAIT).await;
        assert_eq!(mails[1].message_id, "id-2@x");
        assert_eq!(mails[1].text.trim_end(), "Just text.");
        assert_eq!(mails[1].html, None);
    }

    #[tokio::test]
    async fn transient_and_permanent_refusals() {
        let server = SmtpServer::start();
        let mut client = Client::connect(server.port());
        assert_eq!(client.cmd("EHLO client.test"), 250);

        server.set_behaviour(Behaviour::Transient);
        assert_eq!(client.cmd("MAIL FROM:<bounce@firstcome.test>"), 250);
        assert_eq!(client.cmd("RCPT TO:<alice@example.com>"), 250);
        assert_eq!(client.cmd("DATA"), 451);
        assert_eq!(client.cmd("RSET"), 250);

        server.set_behaviour(Behaviour::Reject);
        assert_eq!(client.cmd("MAIL FROM:<bounce@firstcome.test>"), 250);
        assert_eq!(client.cmd("RCPT TO:<alice@example.com>"), 550);
        assert_eq!(client.cmd("RSET"), 250);

        server.set_behaviour(Behaviour::Accept);
        server.reject_recipient("Bob@Example.com");
        assert_eq!(client.cmd("MAIL FROM:<bounce@firstcome.test>"), 250);
        assert_eq!(client.cmd("RCPT TO:<bob@example.com>"), 550);
        assert_eq!(client.cmd("RCPT TO:<alice@example.com>"), 250);
        assert_eq!(client.cmd("DATA"), 354);
        assert_eq!(client.data(&message("id-3@x", "only alice")), 250);

        server.allow_recipient("bob@example.com");
        assert_eq!(
            deliver(&mut client, &["bob@example.com"], "id-4@x", "bob"),
            250
        );
        assert_eq!(client.cmd("QUIT"), 221);

        let mails = server.wait_for(2, WAIT).await;
        assert_eq!(mails.len(), 2);
        assert_eq!(mails[0].to, ["alice@example.com"]);
        assert_eq!(mails[0].message_id, "id-3@x");
        assert_eq!(mails[1].to, ["bob@example.com"]);
        assert_eq!(server.attempts(), 4);
    }

    #[tokio::test]
    async fn stop_refuses_and_cuts_connections_then_start_on_comes_back() {
        let server = SmtpServer::start();
        let port = server.port();
        let observer = server.clone();
        let mut idle = Client::connect(port);
        assert_eq!(idle.cmd("EHLO client.test"), 250);
        assert_eq!(
            deliver(&mut idle, &["alice@example.com"], "before@x", "before"),
            250
        );

        server.stop();
        let refused = TcpStream::connect((LOOPBACK, port)).expect_err("server is down");
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        assert!(idle.is_closed(), "an open connection is cut");
        assert_eq!(
            observer.received().len(),
            1,
            "what was received stays readable"
        );

        let server = SmtpServer::start_on(port);
        assert_eq!(server.port(), port);
        let mut client = Client::connect(port);
        assert_eq!(client.cmd("EHLO client.test"), 250);
        assert_eq!(
            deliver(&mut client, &["alice@example.com"], "after@x", "after"),
            250
        );
        let mails = server.wait_for(1, WAIT).await;
        assert_eq!(mails[0].message_id, "after@x");

        // Down from the start, then up.
        let port = free_port();
        let refused = TcpStream::connect((LOOPBACK, port)).expect_err("nothing listens");
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
        let server = SmtpServer::start_on(port);
        Client::connect(server.port());
    }
}
