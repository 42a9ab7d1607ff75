//! The demo's forms as the browser sends them, and their validation: each field's error in
//! words, next to the field it belongs to, with what the user typed kept.

use serde::Deserialize;

/// A product form as sent (every field text, so that a bad number comes back as typed).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ProductForm {
    /// The name field.
    pub name: String,
    /// The description field.
    pub description: String,
    /// The price field, in the shop's currency: `12.90`, `12,90` or `12`.
    pub price: String,
    /// The stock field, a whole number.
    pub stock: String,
}

/// A product form that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidProduct {
    /// Trimmed, 1 to 120 characters.
    pub name: String,
    /// Trimmed, at most 2 000 characters.
    pub description: String,
    /// In cents.
    pub price: i32,
    /// At least 0.
    pub stock: i32,
}

/// The message for each field that failed (`""` for a field that passed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductErrors {
    /// About the name.
    pub name: String,
    /// About the description.
    pub description: String,
    /// About the price.
    pub price: String,
    /// About the stock.
    pub stock: String,
}

impl ProductErrors {
    /// Whether every field passed.
    pub fn is_empty(&self) -> bool {
        self.name.is_empty()
            && self.description.is_empty()
            && self.price.is_empty()
            && self.stock.is_empty()
    }
}

/// `12.90` → 1290 cents; `None` for anything that is not a non-negative amount with at most
/// two decimals, below 10 million.
pub fn parse_price(text: &str) -> Option<i32> {
    let text = text.trim().replace(',', ".");
    let (units, cents) = match text.split_once('.') {
        Some((u, c)) if !c.is_empty() && c.len() <= 2 => (u, c),
        Some(_) => return None,
        None => (text.as_str(), "0"),
    };
    if units.is_empty()
        || !units.bytes().all(|b| b.is_ascii_digit())
        || !cents.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let units: i32 = units.parse().ok().filter(|u| *u < 10_000_000)?;
    let cents: i32 = if cents.len() == 1 {
        cents.parse::<i32>().ok()? * 10
    } else {
        cents.parse().ok()?
    };
    Some(units * 100 + cents)
}

impl ProductForm {
    /// The form's values, or the message for each field that is wrong.
    pub fn validate(&self) -> Result<ValidProduct, ProductErrors> {
        let mut errors = ProductErrors::default();
        let name = self.name.trim();
        if name.is_empty() {
            errors.name = "Give the product a name.".into();
        } else if name.chars().count() > 120 {
            errors.name = "A name has at most 120 characters.".into();
        }
        let description = self.description.trim();
        if description.chars().count() > 2_000 {
            errors.description = "A description has at most 2 000 characters.".into();
        }
        let price = parse_price(&self.price);
        if price.is_none() {
            errors.price = "A price looks like 12.90 (at most two decimals).".into();
        }
        let stock = self
            .stock
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|s| (0..=1_000_000).contains(s));
        if stock.is_none() {
            errors.stock = "Stock is a whole number from 0 to 1 000 000.".into();
        }
        match (price, stock) {
            (Some(price), Some(stock)) if errors.is_empty() => Ok(ValidProduct {
                name: name.to_string(),
                description: description.to_string(),
                price,
                stock,
            }),
            _ => Err(errors),
        }
    }
}

/// The sign-up and login form.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AccountForm {
    /// The e-mail field.
    pub email: String,
    /// The password field (never shown back).
    pub password: String,
    /// Where to go after a login (`?next=`, kept in a hidden field).
    pub next: String,
}

/// The message for each account field that failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountErrors {
    /// About the address.
    pub email: String,
    /// About the password.
    pub password: String,
}

impl AccountForm {
    /// The address as stored: trimmed (case is kept; uniqueness ignores it).
    pub fn email(&self) -> &str {
        self.email.trim()
    }

    /// Checks a sign-up: a plausible address and a password of 10 to 1 024 characters
    /// (NIST's floor is 8; an upper bound keeps argon2 from hashing megabytes).
    pub fn validate_signup(&self) -> Result<(), AccountErrors> {
        let mut errors = AccountErrors::default();
        let email = self.email();
        let plausible = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !email.contains(char::is_whitespace);
        if !plausible {
            errors.email = "Enter an e-mail address like ada@example.com.".into();
        }
        let n = self.password.chars().count();
        if !(10..=1024).contains(&n) {
            errors.password = "A password has 10 to 1 024 characters.".into();
        }
        if errors == AccountErrors::default() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_read_as_people_type_them() {
        assert_eq!(parse_price("12.90"), Some(1290));
        assert_eq!(parse_price(" 12,9 "), Some(1290));
        assert_eq!(parse_price("12"), Some(1200));
        assert_eq!(parse_price("0.05"), Some(5));
        for bad in [
            "", "-1", "1.234", "1.", ".5", "abc", "1e3", "99999999", "1.2.3",
        ] {
            assert_eq!(parse_price(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_product_form_names_each_bad_field_and_trims_the_good_ones() {
        let form = ProductForm {
            name: "  ".into(),
            description: "fine".into(),
            price: "12.345".into(),
            stock: "-3".into(),
        };
        let errors = form.validate().expect_err("three bad fields");
        assert!(!errors.name.is_empty() && !errors.price.is_empty() && !errors.stock.is_empty());
        assert!(errors.description.is_empty());
        let ok = ProductForm {
            name: " Pinion ".into(),
            description: "".into(),
            price: "4.50".into(),
            stock: "7".into(),
        };
        assert_eq!(
            ok.validate(),
            Ok(ValidProduct {
                name: "Pinion".into(),
                description: "".into(),
                price: 450,
                stock: 7
            })
        );
    }

    #[test]
    fn a_sign_up_needs_an_address_and_a_long_enough_password() {
        let form = |email: &str, password: &str| AccountForm {
            email: email.into(),
            password: password.into(),
            next: String::new(),
        };
        assert!(form("ada@example.com", "correct horse")
            .validate_signup()
            .is_ok());
        let e = form("ada", "short").validate_signup().expect_err("both");
        assert!(!e.email.is_empty() && !e.password.is_empty());
        assert!(form("ada@example", "correct horse")
            .validate_signup()
            .is_err());
        assert!(form("a da@example.com", "correct horse")
            .validate_signup()
            .is_err());
    }
}
