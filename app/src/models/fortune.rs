//! [`Fortune`]: the TechEmpower `fortune` table.

use pinion_orm::Model;

/// A row of `fortune`.
#[derive(Debug, Clone, PartialEq, Eq, Model)]
#[model(table = "fortune")]
pub struct Fortune {
    /// Primary key.
    #[model(primary_key)]
    pub id: i32,
    /// The text, shown HTML-escaped.
    pub message: String,
}
