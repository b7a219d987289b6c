//! Pipeline manifests and profiles: parse (schema), overlay (profiles), render (templating),
//! validate (resolve), and explain problems (diagnostics).
pub mod body;
pub mod budget;
mod deadlock;
mod declare;
pub mod diagnostics;
mod expand;
pub mod id;
mod keyed;
pub mod model;
pub mod paths;
pub mod preflight;
pub mod profiles;
pub mod resolve;
pub mod schema;
pub mod templating;
mod validate;

pub use body::{Body, Kind};
pub use id::StepId;
pub use model::{Pipeline, Probe, Ready, Step};
pub use resolve::{LoadOptions, load};
