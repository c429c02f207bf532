//! The deployment history: every `/rollback` and `/restart` an operator confirmed,
//! with each of its steps.
//!
//! The `in_progress` row doubles as the cross-replica lock (a partial unique index
//! allows one per service) and as the note a restarted Klaxon reads to find a
//! half-done rollback. Portable SQL only, as in [`crate::store`]: the same
//! statements serve SQLite and PostgreSQL (the partial index is in each migration).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InProgress,
    /// The new container became healthy (or the restarted one did).
    Succeeded,
    /// The new container was not healthy; the original runs again.
    Reverted,
    /// Something went wrong that Klaxon could not undo; the detail says what is left.
    Failed,
    /// Klaxon stopped in the middle; the next start-up checked and fixed up.
    Interrupted,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::InProgress,
        Status::Succeeded,
        Status::Reverted,
        Status::Failed,
        Status::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Succeeded => "succeeded",
            Status::Reverted => "reverted",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A row to insert when an operation starts.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeployment {
    pub service: String,
    pub container: String,
    /// `rollback` or `restart`.
    pub action: String,
    pub from_image: String,
    pub from_image_id: String,
    pub to_image: String,
    pub to_image_id: String,
    pub requested_by: u64,
    pub requested_by_name: String,
    /// Names of the operators who confirmed, comma-separated.
    pub approved_by: String,
    pub started_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub id: i64,
    pub service: String,
    pub container: String,
    pub action: String,
    pub status: Status,
    pub from_image: String,
    pub from_image_id: String,
    pub to_image: String,
    pub to_image_id: String,
    /// Empty unless a rollback renamed the old container out of the way.
    pub kept_container: String,
    pub requested_by: u64,
    pub requested_by_name: String,
    pub approved_by: String,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at_ms: i64,
    pub step: String,
    pub detail: String,
}

const COLUMNS: &str = "id, service, container, action, status, from_image, from_image_id, \
     to_image, to_image_id, kept_container, requested_by, requested_by_name, approved_by, \
     started_ms, finished_ms, detail";

/// Inserts an `in_progress` row. Fails (unique violation) while another operation on
/// the same service is in progress, on this replica or another one.
pub async fn insert(store: &Store, d: &NewDeployment) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO deployments (service, container, action, status, from_image, \
         from_image_id, to_image, to_image_id, kept_container, requested_by, \
         requested_by_name, approved_by, started_ms, finished_ms, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, $14) RETURNING id",
    )
    .bind(&d.service)
    .bind(&d.container)
    .bind(&d.action)
    .bind(Status::InProgress.as_str())
    .bind(&d.from_image)
    .bind(&d.from_image_id)
    .bind(&d.to_image)
    .bind(&d.to_image_id)
    .bind("")
    .bind(d.requested_by as i64)
    .bind(&d.requested_by_name)
    .bind(&d.approved_by)
    .bind(d.started_ms)
    .bind("")
    .fetch_one(store.pool())
    .await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// Notes the old container's temporary name, before the rename happens, so that a
/// crash right after it still leaves a trail.
pub async fn set_kept(store: &Store, id: i64, kept: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE deployments SET kept_container = $1 WHERE id = $2")
        .bind(kept)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

pub async fn add_step(
    store: &Store,
    id: i64,
    at_ms: i64,
    step: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO deployment_steps (deployment_id, at_ms, step, detail) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(at_ms)
    .bind(step)
    .bind(detail)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Closes a row with its final status.
pub async fn finish(
    store: &Store,
    id: i64,
    status: Status,
    finished_ms: i64,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE deployments SET status = $1, finished_ms = $2, detail = $3 WHERE id = $4")
        .bind(status.as_str())
        .bind(finished_ms)
        .bind(detail)
        .bind(id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Rows still `in_progress`: of one service, or of all of them.
pub async fn in_progress(
    store: &Store,
    service: Option<&str>,
) -> Result<Vec<Deployment>, StoreError> {
    let rows = match service {
        Some(s) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM deployments WHERE status = $1 AND service = $2 ORDER BY id"
            ))
            .bind(Status::InProgress.as_str())
            .bind(s)
            .fetch_all(store.pool())
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM deployments WHERE status = $1 ORDER BY id"
            ))
            .bind(Status::InProgress.as_str())
            .fetch_all(store.pool())
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// A service's operations, newest first.
pub async fn recent(
    store: &Store,
    service: &str,
    limit: i64,
) -> Result<Vec<Deployment>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM deployments WHERE service = $1 ORDER BY id DESC LIMIT $2"
    ))
    .bind(service)
    .bind(limit)
    .fetch_all(store.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

pub async fn get(store: &Store, id: i64) -> Result<Option<Deployment>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM deployments WHERE id = $1"))
        .bind(id)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// The steps of one operation, in order.
pub async fn steps(store: &Store, id: i64) -> Result<Vec<Step>, StoreError> {
    let rows = sqlx::query(
        "SELECT at_ms, step, detail FROM deployment_steps WHERE deployment_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Step {
                at_ms: r.try_get("at_ms")?,
                step: r.try_get("step")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect()
}

fn from_row(r: &AnyRow) -> Result<Deployment, StoreError> {
    let status: String = r.try_get("status")?;
    Ok(Deployment {
        id: r.try_get("id")?,
        service: r.try_get("service")?,
        container: r.try_get("container")?,
        action: r.try_get("action")?,
        // An unknown status can only come from a newer Klaxon; treating it as
        // finished keeps an old one from "recovering" what it does not understand.
        status: Status::parse(&status).unwrap_or(Status::Failed),
        from_image: r.try_get("from_image")?,
        from_image_id: r.try_get("from_image_id")?,
        to_image: r.try_get("to_image")?,
        to_image_id: r.try_get("to_image_id")?,
        kept_container: r.try_get("kept_container")?,
        requested_by: r.try_get::<i64, _>("requested_by")? as u64,
        requested_by_name: r.try_get("requested_by_name")?,
        approved_by: r.try_get("approved_by")?,
        started_ms: r.try_get("started_ms")?,
        finished_ms: r.try_get::<Option<i64>, _>("finished_ms")?,
        detail: r.try_get("detail")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(service: &str) -> NewDeployment {
        NewDeployment {
            service: service.into(),
            container: "api".into(),
            action: "rollback".into(),
            from_image: "app:v2".into(),
            from_image_id: "sha256:2".into(),
            to_image: "app:v1".into(),
            to_image_id: "sha256:1".into(),
            requested_by: 42,
            requested_by_name: "alice".into(),
            approved_by: "alice".into(),
            started_ms: 1_000,
        }
    }

    #[tokio::test]
    async fn one_in_progress_per_service_and_history_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = Store::connect(&url).await.unwrap();
        store.migrate().await.unwrap();

        let id = insert(&store, &new("api")).await.unwrap();
        assert!(
            insert(&store, &new("api")).await.is_err(),
            "a second in-progress row for the same service is refused"
        );
        let other = insert(&store, &new("web")).await.unwrap();
        set_kept(&store, id, "api-klaxon-1").await.unwrap();
        add_step(&store, id, 1_100, "stopped", "api").await.unwrap();
        add_step(&store, id, 1_200, "started", "app:v1")
            .await
            .unwrap();
        let open = in_progress(&store, Some("api")).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].kept_container, "api-klaxon-1");
        assert_eq!(open[0].finished_ms, None);

        finish(&store, id, Status::Succeeded, 2_000, "healthy")
            .await
            .unwrap();
        assert!(in_progress(&store, Some("api")).await.unwrap().is_empty());
        assert_eq!(in_progress(&store, None).await.unwrap()[0].id, other);
        // Finished, the service takes a new operation.
        let again = insert(&store, &new("api")).await.unwrap();
        let history = recent(&store, "api", 10).await.unwrap();
        assert_eq!(
            history.iter().map(|d| d.id).collect::<Vec<_>>(),
            vec![again, id]
        );
        assert_eq!(history[1].status, Status::Succeeded);
        assert_eq!(history[1].finished_ms, Some(2_000));
        let s = steps(&store, id).await.unwrap();
        assert_eq!(
            s.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
            ["stopped", "started"]
        );
        assert_eq!(get(&store, id).await.unwrap().unwrap().detail, "healthy");
        store.close().await;
    }
}
