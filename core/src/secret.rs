//! Masking secrets in URLs before they are shown: in the `/restart` plan, the logs,
//! `check-config` and config errors.
//!
//! A URL in a config (`health_url`, `database.url`) often carries a credential,
//! either as user-info (`http://user:pass@host`) or as a query parameter
//! (`?token=…`, `?sslpassword=…`). Every place Klaxon prints a URL goes through
//! [`redact_url`]. It works on the text, not on a parsed URL, so a URL that does not
//! parse (a typo in the config, which is exactly when it gets echoed in an error) is
//! masked too instead of being printed raw.

/// Shown in place of a secret.
pub const MASK: &str = "****";

/// `url` with the password of its user-info and the values of secret-like query
/// (and fragment) parameters replaced by `****`. The user name, host, path and
/// other parameters stay, so the operator still sees which endpoint is meant.
pub fn redact_url(url: &str) -> String {
    let (head, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let (authority_end, userinfo_end) = userinfo_bounds(rest);
    let mut out = String::with_capacity(url.len());
    out.push_str(head);
    match userinfo_end {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&rest[at..authority_end]);
        }
        None => out.push_str(&rest[..authority_end]),
    }
    let tail = &rest[authority_end..];
    // Path, then `?query`, then `#fragment`; parameters in both are checked.
    let mut cut = tail.find(['?', '#']).unwrap_or(tail.len());
    out.push_str(&tail[..cut]);
    while cut < tail.len() {
        let sep = &tail[cut..cut + 1];
        out.push_str(sep);
        let start = cut + 1;
        let end = if sep == "?" {
            tail[start..].find('#').map_or(tail.len(), |i| start + i)
        } else {
            tail.len()
        };
        out.push_str(&redact_params(&tail[start..end]));
        cut = end;
    }
    out
}

/// Where the authority ends in `rest` (the URL after `scheme://`) and, when it has
/// user-info, where the `@` is. A password may hold an unencoded `@` or `/` (a
/// hand-written URL that does not parse): when the part before the first `/` has a
/// `:` not followed by a port number, the user-info runs to the last `@` before the
/// query. That may mask a little too much, never too little.
fn userinfo_bounds(rest: &str) -> (usize, Option<usize>) {
    let first_delim = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let before = &rest[..first_delim];
    let looks_like_password = before
        .split_once(':')
        .is_some_and(|(_, after)| after.is_empty() || !after.chars().all(|c| c.is_ascii_digit()));
    let at = if looks_like_password {
        // The last `@` before the query: `u:p@ss/w0rd@host` is user `u`.
        let query = rest.find(['?', '#']).unwrap_or(rest.len());
        rest[..query].rfind('@')
    } else {
        before.rfind('@')
    };
    match at {
        Some(at) => {
            let end = rest[at..]
                .find(['/', '?', '#'])
                .map_or(rest.len(), |i| at + i);
            (end, Some(at))
        }
        None => (first_delim, None),
    }
}

/// `a=1&token=x;b=2` with secret values masked.
fn redact_params(params: &str) -> String {
    let mut out = String::with_capacity(params.len());
    let mut rest = params;
    loop {
        let end = rest.find(['&', ';']).unwrap_or(rest.len());
        let pair = &rest[..end];
        match pair.split_once('=') {
            Some((key, value)) if is_secret_name(key) && !value.is_empty() => {
                out.push_str(key);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(pair),
        }
        if end == rest.len() {
            return out;
        }
        out.push_str(&rest[end..end + 1]);
        rest = &rest[end + 1..];
    }
}

/// Whether a parameter or config key names a secret: `password`, `token`,
/// `api_key`, `X-Amz-Signature`, `client_secret`, `sslpassword`... Case, `-`, `_`
/// and `.` are ignored, and percent-escapes are decoded first.
pub fn is_secret_name(key: &str) -> bool {
    let k: String = percent_decode(key)
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    const EXACT: &[&str] = &[
        "pass",
        "pwd",
        "key",
        "auth",
        "sig",
        "code",
        "session",
        "sessionid",
        "sid",
        "jwt",
        "hash",
        "otp",
        "pin",
        "cookie",
        "privatekey",
        "sslkey",
    ];
    const SUFFIXES: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "accesskey",
        "signature",
        "credential",
        "credentials",
        "authorization",
        "auth",
    ];
    EXACT.contains(&k.as_str()) || SUFFIXES.iter().any(|s| k.ends_with(s))
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` with every occurrence of `url` replaced by its masked form: for error
/// messages from libraries that quote the URL they were given.
pub fn scrub_url_in(text: &str, url: &str) -> String {
    if url.is_empty() || !text.contains(url) {
        return text.to_string();
    }
    text.replace(url, &redact_url(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Item 6 of issue #12: every way a URL carries a credential, masked, with the
    /// rest of the URL kept so the operator still knows which endpoint is meant.
    #[test]
    fn secrets_in_urls_are_masked_everywhere() {
        let table: &[(&str, &str)] = &[
            (
                "http://user:pass@127.0.0.1:8080/health?token=abc",
                "http://user:****@127.0.0.1:8080/health?token=****",
            ),
            (
                "postgres://k:s3cret@db:5432/k",
                "postgres://k:****@db:5432/k",
            ),
            (
                "postgres://k@db/k?sslmode=require&password=hunter2",
                "postgres://k@db/k?sslmode=require&password=****",
            ),
            (
                "postgresql://db/k?user=k&PassWord=hunter2&sslpassword=x2",
                "postgresql://db/k?user=k&PassWord=****&sslpassword=****",
            ),
            (
                "https://h/x?X-Amz-Signature=abc&X-Amz-Credential=cr3d&page=2",
                "https://h/x?X-Amz-Signature=****&X-Amz-Credential=****&page=2",
            ),
            (
                "https://h/h?api_key=1&apikey=2&key=3&access_token=4&client_secret=5&sig=6",
                "https://h/h?api_key=****&apikey=****&key=****&access_token=****&client_secret=****&sig=****",
            ),
            (
                "https://h/h?auth=1;secret=2&pwd=3&passwd=4&pass=5&credentials=6",
                "https://h/h?auth=****;secret=****&pwd=****&passwd=****&pass=****&credentials=****",
            ),
            ("https://h/h#access_token=xyz", "https://h/h#access_token=****"),
            ("https://h/h?pass%77ord=xyz", "https://h/h?pass%77ord=****"),
            // A password with `@` and `/` in it, unencoded: the URL does not parse.
            (
                "http://u:p@ss/w0rd@host:1/h",
                "http://u:****@host:1/h",
            ),
            ("u:hunter2@host/db", "u:****@host/db"),
            ("postgres://k@db/k", "postgres://k@db/k"),
            ("sqlite://klaxon.db", "sqlite://klaxon.db"),
            (
                "http://h:8080/p?email=a@b&page=1",
                "http://h:8080/p?email=a@b&page=1",
            ),
            ("ftp://x", "ftp://x"),
            ("", ""),
        ];
        for (raw, masked) in table {
            assert_eq!(redact_url(raw), *masked, "{raw}");
        }
        for secret in ["p@ss", "hunter2", "s3cret", "abc", "xyz", "w0rd", "cr3d"] {
            for (raw, _) in table {
                let shown = redact_url(raw);
                if raw.contains(secret) && *raw != "http://h:8080/p?email=a@b&page=1" {
                    assert!(!shown.contains(secret), "{secret} survives in {shown}");
                }
            }
        }
    }

    /// Item 6: the `/restart` and `/rollback` plan (and each step's log line) say
    /// how health is checked without the health_url's credentials.
    #[test]
    fn secrets_in_urls_are_masked_in_the_restart_plan() {
        let wait = crate::rollout::HealthWait::Http(
            "http://user:hunter2@127.0.0.1:8080/health?token=abc".into(),
        );
        assert_eq!(
            wait.describe(),
            "HTTP check of http://user:****@127.0.0.1:8080/health?token=****"
        );
    }

    #[test]
    fn secret_names() {
        for k in [
            "token",
            "alertmanager_token",
            "grafana_signing_secret",
            "DB_PASSWORD",
        ] {
            assert!(is_secret_name(k), "{k}");
        }
        for k in [
            "token_file",
            "health_url",
            "guild_id",
            "page",
            "user",
            "sslmode",
        ] {
            assert!(!is_secret_name(k), "{k}");
        }
    }

    #[test]
    fn library_messages_quoting_the_url_are_scrubbed() {
        let url = "http://u:pw@h/x";
        assert_eq!(
            scrub_url_in(&format!("error sending request for url ({url})"), url),
            "error sending request for url (http://u:****@h/x)"
        );
    }
}
