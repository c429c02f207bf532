//! A real browser for the status page tests: Debian's `chromium --headless`, one
//! fresh profile per call, for the DOM as rendered and for screenshots.
//!
//! Never skipped: without chromium a test fails saying how to install it
//! (`scripts/test.sh` does when run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

pub const CHROMIUM: &str = "/usr/bin/chromium";

fn base_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

fn run(extra: &[String], url: &str) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install it with `apt-get install -y chromium` \
         (scripts/test.sh does when run as root)"
    );
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut args = base_args(profile.path());
    args.extend_from_slice(extra);
    args.push(url.to_string());
    let out = Command::new(CHROMIUM)
        .args(&args)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM of `url` after the browser rendered it.
pub fn dump_dom(url: &str) -> String {
    run(&["--dump-dom".into()], url)
}

/// Where test artifacts go: `target/test-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("the artifacts directory");
    dir
}

/// A screenshot of `url` at `width`×`height`, kept as `target/test-artifacts/NAME`
/// (the path is printed and returned).
pub fn screenshot(url: &str, width: u32, height: u32, name: &str) -> PathBuf {
    let file = artifacts_dir().join(name);
    let _ = std::fs::remove_file(&file);
    run(
        &[
            format!("--screenshot={}", file.display()),
            format!("--window-size={width},{height}"),
        ],
        url,
    );
    let meta = std::fs::metadata(&file).expect("chromium wrote the screenshot");
    assert!(
        meta.len() > 1_000,
        "an empty screenshot: {}",
        file.display()
    );
    println!("screenshot {width}x{height}: {}", file.display());
    file
}

/// A strict well-formedness check of an XML document without DTD, CDATA or
/// comments (what the Atom feed is): tags nest and close, attribute values are
/// quoted, every `&` starts a predefined entity. Returns the root element's tag.
pub fn well_formed(xml: &str) -> Result<String, String> {
    let body = match xml.strip_prefix("<?xml") {
        Some(r) => &r[r.find("?>").ok_or("unclosed declaration")? + 2..],
        None => xml,
    };
    let mut stack: Vec<String> = Vec::new();
    let mut root = None;
    let mut rest = body;
    while let Some(lt) = rest.find('<') {
        text(&rest[..lt])?;
        if stack.is_empty() && root.is_some() {
            return Err("content after the root element".into());
        }
        let gt = rest[lt..].find('>').ok_or("unclosed tag")? + lt;
        let tag = &rest[lt + 1..gt];
        if tag.contains('<') {
            return Err(format!("`<` inside tag {tag}"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            if stack.pop().as_deref() != Some(name) {
                return Err(format!("</{name}> closes nothing open"));
            }
        } else {
            let name = tag
                .split_whitespace()
                .next()
                .ok_or("empty tag")?
                .trim_end_matches('/');
            if tag.matches('"').count() % 2 != 0 {
                return Err(format!("unbalanced quotes in {tag}"));
            }
            if root.is_none() {
                root = Some(tag.trim_end_matches('/').to_string());
            }
            if !tag.ends_with('/') {
                stack.push(name.to_string());
            }
        }
        rest = &rest[gt + 1..];
    }
    if !rest.trim().is_empty() {
        return Err("text after the root element".into());
    }
    if !stack.is_empty() {
        return Err(format!("unclosed {stack:?}"));
    }
    root.ok_or_else(|| "no root element".into())
}

fn text(t: &str) -> Result<(), String> {
    if t.contains('>') {
        return Err(format!("raw `>` in {t}"));
    }
    for (k, _) in t.match_indices('&') {
        if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#39;"]
            .iter()
            .any(|e| t[k..].starts_with(e))
        {
            return Err(format!("bare & in {t}"));
        }
    }
    Ok(())
}
