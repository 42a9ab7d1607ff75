//! [`World`]: the TechEmpower `world` table.

use pinion_orm::Model;
use serde::{Deserialize, Serialize};

/// A row of `world`, serialized as TechEmpower names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Model)]
#[model(table = "world")]
pub struct World {
    /// Primary key, 1..=10000.
    #[model(primary_key)]
    pub id: i32,
    /// The value `/updates` changes.
    #[serde(rename = "randomNumber")]
    #[model(column = "randomnumber")]
    pub random_number: i32,
}
