//! Moved to the leaf [`crate::routing`] (the `App` holds the router, and `app`
//! imports no domain module); re-exported here for the callers of the old path.

pub use crate::routing::*;
