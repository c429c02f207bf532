//! Reading `/metrics` in tests and benches: one scrape parsed into samples, and
//! the series names a Prometheus rule or a Grafana query refers to.
//!
//! Why a parser of our own: the tests check values (not substrings), count series
//! for the cardinality budget, and check that every name the monitoring files use
//! is in a real scrape; the text format is simple enough that a few lines do it,
//! and no YAML or PromQL crate is in the lock file.

use std::collections::BTreeSet;

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Label pairs in the order rendered, values unescaped.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    pub text: String,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_line)
            .collect();
        Scrape {
            samples,
            text: text.to_string(),
        }
    }

    /// GETs `/metrics` from a bot's HTTP address.
    pub async fn get(addr: std::net::SocketAddr) -> anyhow::Result<Scrape> {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Scrape::parse(&text))
    }

    /// The value of the one series with this name and (at least) these labels;
    /// `None` when there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.find(name, labels).map(|s| s.value)
    }

    /// The sum over every series with this name and (at least) these labels.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .map(|s| s.value)
            .sum()
    }

    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        self.samples
            .iter()
            .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }

    /// Every sample name (`_bucket`, `_sum`, `_count` of a histogram included).
    pub fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }

    /// How many series the scrape has (each histogram bucket is one).
    pub fn series(&self) -> usize {
        self.samples.len()
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        None => (head.to_string(), Vec::new()),
        Some((name, rest)) => (name.to_string(), parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

fn parse_labels(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        out.push((key.trim_start_matches(',').to_string(), value));
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
    Some(out)
}

/// Series names a PromQL expression refers to: `klaxon_*` identifiers, each
/// followed by neither `(` (a function) nor part of a longer name.
pub fn names_in_expr(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("klaxon_") {
        let start = i + at;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if before_ok {
            out.insert(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_labels_and_names() {
        let s =
            Scrape::parse("# TYPE a counter\na_total{x=\"1\\\"2\",le=\"+Inf\"} 3\nb 0.5\n# EOF\n");
        assert_eq!(s.value("a_total", &[("x", "1\"2")]), Some(3.0));
        assert_eq!(s.value("b", &[]), Some(0.5));
        assert_eq!(s.series(), 2);
        let names = names_in_expr(
            "sum(rate(klaxon_x_count{status=~\"5..\"}[5m])) / clamp_min(klaxon_y_total, 1) > 0",
        );
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["klaxon_x_count", "klaxon_y_total"]
        );
    }
}
