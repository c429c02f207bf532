//! `klaxon db stats`: rows and bytes per table, so an operator sees what grows and
//! that retention keeps it in bounds.
//!
//! Sizes include a table's indexes. SQLite: from the `dbstat` virtual table when
//! the library has it (the bundled one does), else only the file's total (page
//! count × page size) and no size per table. PostgreSQL: `pg_total_relation_size`
//! (table, indexes and TOAST).

use sqlx::Row;

use super::{Backend, Store, StoreError};

/// One table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    pub name: String,
    pub rows: i64,
    /// `None` when the backend cannot say (SQLite without `dbstat`).
    pub bytes: Option<i64>,
}

/// Every table, by name, and the database's total size in bytes.
#[derive(Debug, Clone)]
pub struct DbStats {
    pub tables: Vec<TableStats>,
    pub total_bytes: i64,
    /// SQLite: pages on the free list (given back by incremental vacuum).
    pub free_bytes: Option<i64>,
}

/// The rows and size of every table.
pub async fn collect(store: &Store) -> Result<DbStats, StoreError> {
    let pool = store.pool();
    let names: Vec<String> = match store.backend() {
        Backend::Sqlite => sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' ORDER BY name",
        ),
        Backend::Postgres => sqlx::query(
            "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
             ORDER BY name",
        ),
    }
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| r.try_get::<String, _>("name"))
    .collect::<Result<_, _>>()?;

    // SQLite: one pass over dbstat, every b-tree (table or index) by name, then
    // each index added to its table.
    let mut sqlite_sizes: Option<std::collections::HashMap<String, i64>> = None;
    if store.backend() == Backend::Sqlite {
        let pages = sqlx::query(
            "SELECT m.tbl_name AS tbl, SUM(d.pgsize) AS bytes FROM dbstat d \
             JOIN sqlite_master m ON m.name = d.name GROUP BY m.tbl_name",
        )
        .fetch_all(pool)
        .await;
        if let Ok(rows) = pages {
            let mut sizes = std::collections::HashMap::new();
            for r in rows {
                sizes.insert(
                    r.try_get::<String, _>("tbl")?,
                    r.try_get::<i64, _>("bytes")?,
                );
            }
            sqlite_sizes = Some(sizes);
        }
    }
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        // Names come from the catalogue, quoted as identifiers all the same.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let rows: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {quoted}"))
            .fetch_one(pool)
            .await?
            .try_get(0)?;
        let bytes = match store.backend() {
            Backend::Sqlite => sqlite_sizes
                .as_ref()
                .map(|sizes| sizes.get(&name).copied().unwrap_or(0)),
            Backend::Postgres => Some(
                sqlx::query("SELECT pg_total_relation_size(CAST($1 AS regclass))")
                    .bind(&quoted)
                    .fetch_one(pool)
                    .await?
                    .try_get::<i64, _>(0)?,
            ),
        };
        tables.push(TableStats { name, rows, bytes });
    }

    let (total_bytes, free_bytes) = match store.backend() {
        Backend::Sqlite => {
            let pragma = |p: &'static str| async move {
                let row = sqlx::query(p).fetch_one(pool).await?;
                Ok::<i64, StoreError>(row.try_get::<i64, _>(0)?)
            };
            let page = pragma("PRAGMA page_size").await?;
            let count = pragma("PRAGMA page_count").await?;
            let free = pragma("PRAGMA freelist_count").await?;
            (page * count, Some(page * free))
        }
        Backend::Postgres => (
            sqlx::query("SELECT pg_database_size(current_database())")
                .fetch_one(pool)
                .await?
                .try_get::<i64, _>(0)?,
            None,
        ),
    };
    Ok(DbStats {
        tables,
        total_bytes,
        free_bytes,
    })
}

/// Bytes for people: `812 B`, `14.2 KiB`, `3.1 MiB`, `1.4 GiB`.
pub fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// The table `klaxon db stats` prints.
pub fn render(stats: &DbStats) -> String {
    let width = stats
        .tables
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("{:<width$}  {:>12}  {:>12}\n", "table", "rows", "size");
    for t in &stats.tables {
        let size = t.bytes.map(human_bytes).unwrap_or_else(|| "n/a".into());
        out.push_str(&format!(
            "{:<width$}  {:>12}  {:>12}\n",
            t.name, t.rows, size
        ));
    }
    out.push_str(&format!(
        "{:<width$}  {:>12}  {:>12}\n",
        "total",
        stats.tables.iter().map(|t| t.rows).sum::<i64>(),
        human_bytes(stats.total_bytes)
    ));
    if let Some(free) = stats.free_bytes {
        out.push_str(&format!(
            "{:<width$}  {:>12}  {:>12}\n",
            "(free pages)",
            "",
            human_bytes(free)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(14_540), "14.2 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 + 100_000), "3.1 MiB");
    }
}
