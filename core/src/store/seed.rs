//! Bulk rows for benches and tests: a simulated history (a year of alerts, audit
//! rows, incidents) written fast, many rows per `INSERT`.
//!
//! Why here: all SQL lives in `store/`, and a million rows through the intake's
//! own path would take longer than the bench itself. The callers name the table and
//! the columns (constants in their code, never input), the values are bound.
//! Not used by the bot.

use super::{Store, StoreError};

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Text(String),
    /// NULL in an integer column (PostgreSQL wants the type of a NULL too).
    Null,
    /// NULL in a text column.
    NullText,
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Value::Null, Value::Int)
    }
}

/// At most this many bound values per statement (SQLite allows 32766): small
/// enough that one statement stays well under sqlx's slow-statement warning.
const MAX_PARAMS: usize = 4_000;

/// Inserts `rows` (each one value per column, in order) into `table`, as few
/// multi-row `INSERT`s as the parameter limit allows, one transaction per
/// statement. Returns the rows written.
///
/// # Panics
/// When a row has not one value per column: a bug in the caller.
pub async fn insert(
    store: &Store,
    table: &str,
    columns: &[&str],
    rows: &[Vec<Value>],
) -> Result<u64, StoreError> {
    let per = (MAX_PARAMS / columns.len().max(1)).max(1);
    let mut written = 0;
    for chunk in rows.chunks(per) {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut n = 0;
        for (i, row) in chunk.iter().enumerate() {
            assert_eq!(row.len(), columns.len(), "one value per column");
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for j in 0..row.len() {
                if j > 0 {
                    sql.push_str(", ");
                }
                n += 1;
                sql.push_str(&format!("${n}"));
            }
            sql.push(')');
        }
        let mut q = sqlx::query(&sql);
        for row in chunk {
            for v in row {
                q = match v {
                    Value::Int(i) => q.bind(*i),
                    Value::Text(s) => q.bind(s.clone()),
                    Value::Null => q.bind(None::<i64>),
                    Value::NullText => q.bind(None::<String>),
                };
            }
        }
        let mut tx = store.begin_write().await?;
        written += q.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
    }
    Ok(written)
}

/// Rows in `table` (a constant of the caller's).
pub async fn count(store: &Store, table: &str) -> Result<i64, StoreError> {
    use sqlx::Row;
    let row = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(store.pool())
        .await?;
    Ok(row.try_get::<i64, _>(0)?)
}
