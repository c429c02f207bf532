//! Relative paths in a config are read against the config file's directory, not
//! the working directory: `klaxon postmortem INC-1 -c other/klaxon.toml` must read
//! `other/klaxon.db`, not create an empty `klaxon.db` wherever the shell happens to
//! be. This covers the SQLite file of `database.url` and `discord.token_file`.

use std::path::{Path, PathBuf};

/// The directory holding the config file, absolute.
pub(super) fn base_dir(config_path: &Path) -> PathBuf {
    let dir = config_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// `path` if absolute, else `base/path`.
pub(super) fn against(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// A SQLite URL whose file is relative, rewritten to the absolute file under
/// `base`; anything else (PostgreSQL, `:memory:`, absolute files) unchanged.
pub(super) fn sqlite_url(base: &Path, url: &str) -> String {
    let (scheme, rest) = match url.strip_prefix("sqlite://") {
        Some(rest) => ("sqlite://", rest),
        None => match url.strip_prefix("sqlite:") {
            Some(rest) => ("sqlite:", rest),
            None => return url.to_string(),
        },
    };
    let (file, query) = match rest.split_once('?') {
        Some((f, q)) => (f, Some(q)),
        None => (rest, None),
    };
    if file.is_empty() || file.contains(":memory:") || Path::new(file).is_absolute() {
        return url.to_string();
    }
    let absolute = base.join(file);
    let scheme = if scheme == "sqlite:" {
        "sqlite://"
    } else {
        scheme
    };
    match query {
        Some(q) => format!("{scheme}{}?{q}", absolute.display()),
        None => format!("{scheme}{}", absolute.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_files_are_read_against_the_config_directory() {
        let base = Path::new("/etc/team");
        assert_eq!(
            sqlite_url(base, "sqlite://klaxon.db"),
            "sqlite:///etc/team/klaxon.db"
        );
        assert_eq!(
            sqlite_url(base, "sqlite:data/k.db?mode=rwc"),
            "sqlite:///etc/team/data/k.db?mode=rwc"
        );
        assert_eq!(sqlite_url(base, "sqlite:///var/k.db"), "sqlite:///var/k.db");
        assert_eq!(sqlite_url(base, "sqlite::memory:"), "sqlite::memory:");
        assert_eq!(sqlite_url(base, "postgres://k@db/k"), "postgres://k@db/k");
        assert_eq!(
            against(base, Path::new("tok")),
            PathBuf::from("/etc/team/tok")
        );
        assert_eq!(
            against(base, Path::new("/run/tok")),
            PathBuf::from("/run/tok")
        );
    }
}
