//! The redactor's tests: the corpus of real log formats, the gaps the hardening
//! issue found, and the rules' edge cases.

use super::*;

/// The corpus of lines with secrets (see the file's header for its format).
const CORPUS: &str = include_str!("../../../tests/data/redaction-corpus.txt");
/// Lines without secrets, which must pass unchanged.
const CLEAN: &str = include_str!("../../../tests/data/redaction-clean.txt");
/// Every secret in the corpus holds this.
const MARKER: &str = "S3CRET";

fn redactor() -> Redactor {
    Redactor::new(&[]).expect("builtins compile")
}

#[test]
fn redacts_every_builtin_kind() {
    let r = redactor();
    let cases = [
        (
            "Authorization: Bearer abcdef123456.xyz",
            "Authorization: Bearer [redacted]",
        ),
        (
            "GET postgres://app:hunter2@db:5432/x",
            "GET postgres://app:[redacted]@db:5432/x",
        ),
        (
            "login password=hunter2 user=bob",
            "login password=[redacted] user=bob",
        ),
        ("cfg secret=s3cr3t&x=1", "cfg secret=[redacted]&x=1"),
        ("token=abc123", "token=[redacted]"),
        (
            r#"{"api_key": "k-123", "n": 1}"#,
            r#"{"api_key": "[redacted]", "n": 1}"#,
        ),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.sig_nature-1 end",
            "jwt [redacted] end",
        ),
        ("aws AKIAIOSFODNN7EXAMPLE ok", "aws [redacted] ok"),
        (
            "bot MTA4NzY1NDMyMTA5ODc2NTQzMg.GaBcDe.abcdefghijklmnopqrstuvwxyz0123 x",
            "bot [redacted] x",
        ),
        (
            r"key -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- done",
            "key [redacted] done",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(r.redact_str(input), want, "input: {input}");
    }
}

#[test]
fn a_key_whose_value_is_another_pair_still_redacts_its_value() {
    // Found by fuzz/fuzz_targets/redactor.rs.
    let r = redactor();
    for input in [
        r#"gfG secret= "api_key": "hunter2secret" x"#,
        r#"missing token: "password": "hunter2secret""#,
    ] {
        let out = r.redact_str(input);
        assert!(!out.contains("hunter2secret"), "{input} -> {out}");
    }
}

#[test]
fn basic_does_not_eat_the_key_of_a_pair() {
    // Found by fuzz/fuzz_targets/redactor.rs.
    let r = redactor();
    assert_eq!(
        r.redact_str("proxy: Basic password=hunter2secret x"),
        "proxy: Basic [redacted] x"
    );
    assert_eq!(
        r.redact_str("Authorization: Basic dXNlcjpwYXNzd29yZA== from 10.0.0.7"),
        "Authorization: Basic [redacted] from 10.0.0.7"
    );
}

#[test]
fn private_key_blocks_span_lines() {
    let r = redactor();
    let text = "before\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\nabc\n-----END PRIVATE KEY-----\nafter";
    assert_eq!(
        r.redact_str(text),
        "before\n[redacted]\n[redacted]\n[redacted]\n[redacted]\nafter"
    );
}

#[test]
fn plain_lines_are_borrowed() {
    let r = redactor();
    let mut st = RedactState::default();
    let line = b"2026 INFO app v1 ok, 200 requests, latency 12ms";
    assert!(matches!(r.redact(line, false, &mut st), Cow::Borrowed(_)));
}

#[test]
fn extra_patterns_and_secret_groups() {
    let r = Redactor::new(&["internal-[0-9]+".into(), "sid=(?P<secret>\\w+)".into()])
        .expect("compiles");
    assert_eq!(
        r.redact_str("host internal-42 sid=abc x"),
        "host [redacted] sid=[redacted] x"
    );
}

/// The corpus's lines as (line as logged, line as it must be shown).
fn corpus() -> Vec<(String, String)> {
    CORPUS
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let l = l.strip_prefix("^ ").unwrap_or(l);
            let (mut input, mut want) = (String::new(), String::new());
            let mut rest = l;
            while let Some((before, after)) = rest.split_once('«') {
                let (secret, after) = after.split_once('»').expect("« closed by »");
                assert!(secret.contains(MARKER), "unmarked secret in {l}");
                input.push_str(before);
                input.push_str(secret);
                want.push_str(before);
                want.push_str(REDACTED);
                rest = after;
            }
            assert!(
                input.contains(MARKER),
                "a corpus line without a secret: {l}"
            );
            input.push_str(rest);
            want.push_str(rest);
            (input, want)
        })
        .collect()
}

#[test]
fn redaction_corpus_leaks_no_marked_secret() {
    let r = redactor();
    let lines = corpus();
    assert!(lines.len() >= 75, "{} lines", lines.len());
    let mut wrong = Vec::new();
    for (input, want) in &lines {
        let got = r.redact_str(input);
        assert!(
            !got.contains(MARKER),
            "a marked secret survived:\n  line: {input}\n  shown: {got}"
        );
        if got != *want {
            wrong.push(format!("  line:  {input}\n  want:  {want}\n  shown: {got}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} lines lost more or other text than their secret:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn lines_without_secrets_stay_as_they_are() {
    let r = redactor();
    for line in CLEAN.lines().filter(|l| !l.starts_with('#')) {
        let mut st = RedactState::default();
        let got = r.redact(line.as_bytes(), false, &mut st);
        assert_eq!(
            String::from_utf8_lossy(&got),
            line,
            "a line without a secret was changed"
        );
    }
}

/// The forms the hardening issue (#12, item 5) found reaching a public reply.
#[test]
fn redaction_gaps_in_logs_are_closed() {
    let r = redactor();
    let cases = [
        ("password: 'x'", "password: '[redacted]'"),
        ("{'password': 'x'}", "{'password': '[redacted]'}"),
        (r#":password => "x""#, r#":password => "[redacted]""#),
        ("password%3Dx", "password%3D[redacted]"),
        ("secret%22%3A%22x", "secret%22%3A%22[redacted]"),
        (
            "postgres://user:p@ss@host/db",
            "postgres://user:[redacted]@host/db",
        ),
        (
            r#"{\"password\":\"x\"}"#,
            r#"{\"password\":\"[redacted]\"}"#,
        ),
        ("<password>x</password>", "<password>[redacted]</password>"),
        ("Authorization: Token x", "Authorization: Token [redacted]"),
        (
            r#"password="correct horse battery""#,
            r#"password="[redacted]""#,
        ),
        (r#""password": "a b c""#, r#""password": "[redacted]""#),
        ("Cookie: session=x; theme=dark", "Cookie: [redacted]"),
        ("DB_PASS=x", "DB_PASS=[redacted]"),
        (
            r#"Authorization: Digest username="u", response="x""#,
            "Authorization: Digest [redacted]",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(r.redact_str(input), want, "input: {input}");
    }
}

#[test]
fn redacted_text_is_redacted_again_unchanged() {
    // Rules run one after another over the line: a later rule must not mangle what
    // an earlier one wrote.
    let r = redactor();
    for (_, want) in corpus() {
        assert_eq!(r.redact_str(&want), want);
    }
}
