//! An SMTP server in the test process (mailin-embedded), capturing every message whole.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailin_embedded::{Handler, Response, Server, SslConfig, response};

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub to: Vec<String>,
    pub data: String,
}

impl Captured {
    /// A header's raw value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

#[derive(Clone)]
struct Capture {
    messages: Arc<Mutex<Vec<Captured>>>,
    current: Option<Captured>,
}

impl Handler for Capture {
    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Some(Captured {
            to: to.to_vec(),
            data: String::new(),
        });
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(c) = self.current.as_mut() {
            c.data.push_str(&String::from_utf8_lossy(buf));
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(c) = self.current.take() {
            self.messages.lock().expect("capture lock").push(c);
        }
        response::OK
    }
}

/// A running capture server. Each SMTP connection holds one of its threads, and lettre
/// keeps pooled connections open, so it has threads to spare. It has no shutdown (mailin's `serve` never returns); it
/// lives until the test process ends.
pub struct MailSink {
    pub port: u16,
    messages: Arc<Mutex<Vec<Captured>>>,
}

/// A free loopback port, released for someone else to bind.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl MailSink {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Listens on `port` (one a test chose earlier, to start the server late).
    pub fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind smtp port");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let handler = Capture {
            messages: messages.clone(),
            current: None,
        };
        let mut server = Server::new(handler);
        server
            .with_name("sink.test")
            .with_ssl(SslConfig::None)
            .expect("no tls")
            .with_num_threads(32)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            let _ = server.serve();
        });
        Self { port, messages }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<Captured> {
        self.messages.lock().expect("capture lock").clone()
    }

    /// Waits until at least `n` messages arrived (or `timeout` passes), then returns all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Captured> {
        let start = Instant::now();
        while self.messages().len() < n && start.elapsed() < timeout {
            actix_web::rt::time::sleep(Duration::from_millis(25)).await;
        }
        self.messages()
    }
}
