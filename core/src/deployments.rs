//! The deployment history of `/rollback` and `/restart`: its rows and their SQL
//! live with the other aggregates in [`crate::store::deployments`]; re-exported
//! here for the callers of the old path.

pub use crate::store::deployments::*;
