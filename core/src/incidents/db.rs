//! Incidents in the database: moved to [`crate::store::incidents`], where the SQL of
//! every aggregate is reviewed for SQLite/PostgreSQL parity. Re-exported here under
//! the old path.

pub use crate::store::incidents::*;
