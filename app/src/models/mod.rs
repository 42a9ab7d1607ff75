//! The demo's models: accounts, the catalogue and orders (`migrations/0003_catalogue.sql`),
//! and the TechEmpower tables (`migrations/0001_techempower.sql`).

mod order;
mod product;
mod user;

pub use order::{Order, OrderLine};
pub use product::Product;
pub use user::User;
