//! The application's other endpoints, one module each: health probes, metrics, static files,
//! the endpoint list, `/echo` and the read-your-writes demo on `world`.

pub mod demo;
pub mod echo;
pub mod health;
pub mod index;
pub mod metrics;
pub mod static_files;
