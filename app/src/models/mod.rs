//! The demo's models: accounts, the catalogue and orders (`migrations/0003_catalogue.sql`),
//! and the TechEmpower tables (`migrations/0001_techempower.sql`).

mod fortune;
mod order;
mod product;
mod user;
mod world;

pub use fortune::Fortune;
pub use order::{Order, OrderLine};
pub use product::Product;
pub use user::User;
pub use world::World;
