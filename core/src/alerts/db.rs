//! Moved: the intake's decisions to [`super::intake`], its SQL to
//! [`crate::store::alerts`]. Re-exported here for the callers of the old paths.

pub(crate) use super::intake::release_held;
pub use super::intake::{ingest, release_silenced, Ingested};
pub use crate::store::alerts::{firing, Stored};
