//! The application's endpoints, one module each.

pub mod demo;
pub mod echo;
pub mod fortunes;
pub mod health;
pub mod index;
pub mod json;
pub mod metrics;
pub mod plaintext;
pub mod static_files;
pub mod world;
