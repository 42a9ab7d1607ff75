//! [`Order`] and its [`OrderLine`]s.

use pinion_orm::Model;

use super::{Product, User};

/// An order: who placed it and what it came to.
#[derive(Debug, Clone, Model)]
#[model(table = "orders")]
pub struct Order {
    /// Primary key.
    #[model(primary_key, auto)]
    pub id: i64,
    /// Who placed it.
    #[model(foreign_key = User)]
    pub user_id: i64,
    /// The sum of its lines, in cents.
    #[model(column = "total_cents")]
    pub total: i32,
    /// When its confirmation job ran (`None` until then).
    pub confirmed_at: Option<std::time::SystemTime>,
}

/// One product of an order, at the price it was ordered at.
#[derive(Debug, Clone, Model)]
#[model(table = "order_lines")]
pub struct OrderLine {
    /// Primary key.
    #[model(primary_key, auto)]
    pub id: i64,
    /// The order it belongs to.
    #[model(foreign_key = Order)]
    pub order_id: i64,
    /// What was ordered.
    #[model(foreign_key = Product)]
    pub product_id: i32,
    /// How many.
    pub quantity: i32,
    /// The unit price when ordered, in cents.
    #[model(column = "price_cents")]
    pub price: i32,
}
