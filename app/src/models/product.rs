//! [`Product`]: an item of the catalogue.

use pinion_orm::Model;

/// An item of the catalogue. Lists of them are read through the query cache (its TTL: a
/// minute, a write through any instance invalidates them at once).
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "products", cache_ttl = "60s")]
pub struct Product {
    /// Primary key.
    #[model(primary_key, auto)]
    pub id: i32,
    /// What it is called, 1 to 120 characters.
    pub name: String,
    /// A line or two about it.
    pub description: String,
    /// Its price in cents.
    #[model(column = "price_cents")]
    pub price: i32,
    /// How many are left to order.
    pub stock: i32,
    /// The account that added it (none for the seeded rows).
    pub created_by: Option<i64>,
}

impl Product {
    /// The price as shown: `12.90`.
    pub fn price_text(&self) -> String {
        format!("{}.{:02}", self.price / 100, self.price % 100)
    }
}
