//! The application's endpoints, one module each.

pub mod echo;
pub mod index;
pub mod json;
pub mod plaintext;
