//! [`User`]: an account.

use pinion_orm::Model;

/// An account: an e-mail address and an argon2id hash of its password.
#[derive(Debug, Clone, Model)]
#[model(table = "users")]
pub struct User {
    /// Primary key.
    #[model(primary_key, auto)]
    pub id: i64,
    /// The address it signs in with; unique whatever its case.
    pub email: String,
    /// `pinion_web::password::hash` of the password (PHC string).
    pub password_hash: String,
}
