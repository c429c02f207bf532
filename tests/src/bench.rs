//! What the bench binaries (`src/bin/bench_*.rs`) share: flag parsing, percentiles,
//! units, memory and CPU of a process from `/proc`, the `klaxon` binary next to the
//! bench, and where reports go.
//!
//! Why here: each bench had its own copy of these, and the copies had begun to
//! differ (one flag parser ignored unknown flags, another clamped, a third refused
//! zero). The figures a bench prints are compared across runs and branches, so
//! the arithmetic behind them lives once. What is particular to one bench (its
//! defaults, limits and scenarios) stays in its binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context as _};

// ------------------------------------------------------------------- flags

/// `--name VALUE` flags and `--name` switches from the command line, each checked
/// against the bench's lists. `-h` / `--help` answers with the usage.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    usage: String,
    values: HashMap<String, String>,
    switches: Vec<String>,
}

impl Flags {
    /// The process's own arguments.
    pub fn from_env(usage: &str, known: &[&str], switches: &[&str]) -> Result<Flags, String> {
        Flags::parse(std::env::args().skip(1), usage, known, switches)
    }

    /// `known` take a value; `switches` stand alone.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        usage: &str,
        known: &[&str],
        switches: &[&str],
    ) -> Result<Flags, String> {
        let mut values = HashMap::new();
        let mut on = Vec::new();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "-h" | "--help" => return Err(usage.to_string()),
                f if switches.contains(&f) => on.push(flag),
                f if known.contains(&f) => {
                    let value = it
                        .next()
                        .ok_or_else(|| format!("{flag} needs a value\n{usage}"))?;
                    values.insert(flag, value);
                }
                other => return Err(format!("unknown argument `{other}`\n{usage}")),
            }
        }
        Ok(Flags {
            usage: usage.to_string(),
            values,
            switches: on,
        })
    }

    /// Whether a switch was given.
    pub fn is_set(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }

    /// The flag's number, if given.
    pub fn number<T: FromStr>(&self, flag: &str) -> Result<Option<T>, String> {
        match self.values.get(flag) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("{flag}: `{v}` is not a number\n{usage}", usage = self.usage)),
        }
    }

    /// The flag's number, which must be above zero, if given.
    pub fn positive(&self, flag: &str) -> Result<Option<u64>, String> {
        match self.number::<u64>(flag)? {
            Some(0) => Err(format!(
                "{flag} needs a positive number\n{usage}",
                usage = self.usage
            )),
            n => Ok(n),
        }
    }
}

// -------------------------------------------------------------- statistics

/// Nearest rank: the smallest value with at least p % of the samples at or below
/// it. `sorted` must be sorted; empty gives zero.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Nearest-rank percentiles of one series.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

pub fn summarize(mut values: Vec<Duration>) -> Summary {
    values.sort_unstable();
    Summary {
        n: values.len(),
        p50: percentile(&values, 50.0),
        p90: percentile(&values, 90.0),
        p99: percentile(&values, 99.0),
        max: values.last().copied().unwrap_or_default(),
    }
}

// ------------------------------------------------------------------- units

/// Milliseconds, unrounded.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Milliseconds with one decimal.
pub fn ms_tenths(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Seconds with two decimals.
pub fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// Megabytes (10^6) with two decimals.
pub fn mb(bytes: u64) -> f64 {
    (bytes as f64 / 10_000.0).round() / 100.0
}

/// Mebibytes with one decimal.
pub fn mib(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

/// `1,100,000`.
pub fn thousands(n: u64) -> String {
    let digits: Vec<char> = n.to_string().chars().collect();
    let groups: Vec<String> = digits
        .rchunks(3)
        .rev()
        .map(|g| g.iter().collect())
        .collect();
    groups.join(",")
}

/// A target in the report: `met` or `MISSED`.
pub fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

// ------------------------------------------------------------------- /proc

/// `VmRSS` (resident now) and `VmHWM` (peak resident) of a process, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

impl Memory {
    pub fn of(pid: u32) -> anyhow::Result<Memory> {
        Memory::read(&format!("/proc/{pid}/status"))
    }

    /// This process's own.
    pub fn of_self() -> anyhow::Result<Memory> {
        Memory::read("/proc/self/status")
    }

    fn read(path: &str) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        // Lines look like `VmRSS:	   18236 kB`; /proc's kB are KiB.
        let field = |key: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb * 1024)
                .with_context(|| format!("no {key} in {path}"))
        };
        Ok(Memory {
            rss: field("VmRSS:")?,
            hwm: field("VmHWM:")?,
        })
    }

    /// Resets VmHWM to the current RSS (Linux: `echo 5 > /proc/PID/clear_refs`).
    pub fn reset_peak(pid: u32) -> anyhow::Result<()> {
        let path = format!("/proc/{pid}/clear_refs");
        std::fs::write(&path, "5").with_context(|| format!("writing {path}"))
    }
}

/// User + system CPU seconds of a process, from /proc/PID/stat (0 if unreadable).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name (which may contain spaces) start at ")".
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after ")".
    (ticks(11) + ticks(12)) / 100.0
}

// ------------------------------------------------------- binary and report

/// `klaxon`, built by `cargo build --release -p klaxon` next to the bench.
pub fn klaxon_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let binary = exe
        .parent()
        .context("the bench executable has no directory")?
        .join("klaxon");
    if !binary.is_file() {
        bail!(
            "{} not found: build it first with `cargo build --release -p klaxon -p klaxon-tests`",
            binary.display()
        );
    }
    Ok(binary)
}

/// A TOML string literal (JSON's escapes are valid TOML).
pub fn toml_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// `target/bench/NAME.json`: the bench runs from `target/<profile>/`.
pub fn json_path(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("the bench executable is not in target/<profile>/")?;
    Ok(target.join("bench").join(format!("{name}.json")))
}

/// Writes the report to [`json_path`] and returns where.
pub fn write_json(name: &str, report: &serde_json::Value) -> anyhow::Result<PathBuf> {
    let path = json_path(name)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(report).context("serializing the report")?;
    std::fs::write(&path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Result<Flags, String> {
        Flags::parse(
            args.iter().map(|s| s.to_string()),
            "usage",
            &["--n"],
            &["--pg"],
        )
    }

    #[test]
    fn flags_are_checked() {
        assert_eq!(
            flags(&["--n", "5"]).unwrap().number::<usize>("--n"),
            Ok(Some(5))
        );
        assert_eq!(flags(&[]).unwrap().number::<usize>("--n"), Ok(None));
        assert!(flags(&["--x", "5"]).is_err());
        assert!(flags(&["--n"]).is_err());
        assert!(flags(&["--n", "x"])
            .unwrap()
            .number::<usize>("--n")
            .is_err());
        assert!(flags(&["--n", "0"]).unwrap().positive("--n").is_err());
        assert_eq!(flags(&["--help"]).unwrap_err(), "usage");
        let f = flags(&["--pg", "--n", "1"]).unwrap();
        assert!(f.is_set("--pg") && !flags(&[]).unwrap().is_set("--pg"));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(5));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(10));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert_eq!(thousands(1_100_000), "1,100,000");
    }
}
