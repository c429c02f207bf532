//! A tiny SMTP server on 127.0.0.1 that records every mail it is given: enough
//! ESMTP for lettre without TLS or authentication (EHLO, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT). Bodies are decoded (quoted-printable, base64) so tests read the
//! text a subscriber reads.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One mail as the sink received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Unfolded headers, in order.
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The subject, decoded when lettre encoded it (RFC 2047, UTF-8 base64 or Q).
    pub fn subject(&self) -> String {
        decode_words(self.header("subject").unwrap_or_default())
    }

    /// The first link in the body that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> Option<String> {
        let at = self.body.find(prefix)?;
        let rest = &self.body[at..];
        let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
        Some(rest[..end].to_string())
    }
}

/// The running sink.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    /// Listens on 127.0.0.1, a free port.
    pub async fn start() -> SmtpSink {
        let l = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the SMTP sink binds 127.0.0.1");
        let port = l.local_addr().expect("its address").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&mails);
        tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                let keep = Arc::clone(&keep);
                tokio::spawn(async move {
                    let _ = session(c, keep).await;
                });
            }
        });
        SmtpSink { port, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until at least `n` mails arrived (10 s at most), then returns all.
    pub async fn wait_for(&self, n: usize) -> Vec<Mail> {
        let since = Instant::now();
        loop {
            let m = self.mails();
            if m.len() >= n {
                return m;
            }
            assert!(
                since.elapsed() < Duration::from_secs(10),
                "expected {n} mails within 10 s, got {}: {:#?}",
                m.len(),
                m.iter().map(|m| m.subject()).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn session(c: tokio::net::TcpStream, keep: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (r, mut w) = c.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 sink ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            w.write_all(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                .await?;
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            w.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("RSET") {
            from.clear();
            to.clear();
            w.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = angle(&cmd[10..]);
            w.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(angle(&cmd[8..]));
            w.write_all(b"250 OK\r\n").await?;
        } else if upper == "DATA" {
            w.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                data.push_str(
                    l.strip_prefix('.')
                        .filter(|_| l.starts_with(".."))
                        .unwrap_or(l),
                );
                data.push('\n');
            }
            let mail = parse(std::mem::take(&mut from), std::mem::take(&mut to), &data);
            keep.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(mail);
            w.write_all(b"250 OK queued\r\n").await?;
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            w.write_all(b"502 not implemented\r\n").await?;
        }
    }
}

fn angle(s: &str) -> String {
    let s = s.trim();
    let s = s.split_whitespace().next().unwrap_or_default();
    s.trim_start_matches('<').trim_end_matches('>').to_string()
}

fn parse(from: String, to: Vec<String>, data: &str) -> Mail {
    let (head, body) = data.split_once("\n\n").unwrap_or((data, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in head.lines() {
        if l.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(l.trim());
            }
        } else if let Some((n, v)) = l.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let enc = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-transfer-encoding"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    let body = match enc.as_str() {
        "quoted-printable" => qp(body),
        "base64" => String::from_utf8_lossy(&b64(&body.replace(['\n', '\r'], ""))).into_owned(),
        _ => body.to_string(),
    };
    Mail {
        from,
        to,
        headers,
        body,
    }
}

fn qp(s: &str) -> String {
    let joined = s.replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn b64(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let Some(v) = A.iter().position(|a| *a == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// `=?utf-8?b?…?=` / `=?utf-8?q?…?=` words decoded; other text as is.
fn decode_words(s: &str) -> String {
    let mut out = String::new();
    for (k, w) in s.split(' ').enumerate() {
        let decoded = w
            .strip_prefix("=?")
            .and_then(|w| w.strip_suffix("?="))
            .and_then(|w| {
                let mut p = w.splitn(3, '?');
                let (_, enc, text) = (p.next()?, p.next()?, p.next()?);
                Some(match enc.to_ascii_lowercase().as_str() {
                    "b" => String::from_utf8_lossy(&b64(text)).into_owned(),
                    _ => qp(&text.replace('_', " ")),
                })
            });
        match decoded {
            Some(d) => out.push_str(&d),
            None => {
                if k > 0 {
                    out.push(' ');
                }
                out.push_str(w);
            }
        }
    }
    out
}
