//! [`Session`]: the handle a handler gets, over the request's session state.

use std::cell::RefCell;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::id::{Key, SessionId};
use super::record::Record;
use crate::csrf::CsrfKeys;
use crate::{Error, Result};

/// The data name flash messages are kept under (names starting with `_` are the framework's).
const FLASH: &str = "_flash";

/// A message shown once, on the next page (after a redirect): "Saved.", "Wrong password.".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    /// What kind it is, for its style: `success`, `error`, `info`, … (the application's
    /// choice).
    pub kind: String,
    /// The text.
    pub text: String,
}

/// What the request's session is, and what the handler did to it.
pub(crate) struct State {
    /// The id in effect: the cookie's, or a new one (issued or rotated in this request).
    pub(crate) id: Option<SessionId>,
    /// The key of the row as it was loaded (`None`: no row yet).
    pub(crate) stored: Option<Key>,
    pub(crate) record: Record,
    /// The data or the user changed: the row is written.
    pub(crate) dirty: bool,
    /// The id changed (rotation, login): a new cookie is sent.
    pub(crate) new_id: bool,
    /// A row to delete (logout).
    pub(crate) destroy: Option<Key>,
    /// The request's time, by the store's clock.
    pub(crate) now: i64,
    pub(crate) csrf: Rc<CsrfKeys>,
}

impl State {
    /// An anonymous session without a row, at `now`.
    pub(crate) fn anonymous(now: i64, csrf: Rc<CsrfKeys>) -> State {
        State {
            id: None,
            stored: None,
            record: Record::new(now),
            dirty: false,
            new_id: false,
            destroy: None,
            now,
            csrf,
        }
    }

    /// A fresh id in effect, for rotation and for the first value of an anonymous session.
    fn fresh_id(&mut self) -> Result<&SessionId> {
        let id = SessionId::generate().map_err(Error::internal)?;
        self.new_id = true;
        Ok(self.id.insert(id))
    }
}

/// The request's session: values by name that live across requests, the signed-in user,
/// flash messages and the CSRF token. Got by taking it as an argument, under a
/// [`SessionLayer`](super::SessionLayer); a clone is the same session.
///
/// Nothing is written unless something changed: a request that only reads its session costs
/// an L1 lookup (and, every few minutes, the write of its time for the idle timeout). An
/// anonymous visitor has no row and no cookie until a value is stored or a CSRF token is
/// asked for (a form is shown).
#[derive(Clone)]
pub struct Session(pub(crate) Rc<RefCell<State>>);

impl Session {
    /// The value stored under `name`, if there is one of type `T`.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let state = self.0.borrow();
        let value = state.record.data.get(name)?;
        T::deserialize(value).ok()
    }

    /// Stores `value` under `name`; the session is written at the end of the request.
    ///
    /// # Errors
    /// A 500 when `value` cannot be written as JSON (a map with non-string keys), or the OS
    /// has no random bytes for a new id.
    pub fn insert(&self, name: &str, value: impl Serialize) -> Result<()> {
        let value = serde_json::to_value(value)?;
        let mut state = self.0.borrow_mut();
        if state.id.is_none() {
            state.fresh_id()?;
        }
        if state.record.data.get(name) != Some(&value) {
            state.record.data.insert(name.to_string(), value);
            state.dirty = true;
        }
        Ok(())
    }

    /// Removes the value under `name`; whether there was one.
    pub fn remove(&self, name: &str) -> bool {
        let mut state = self.0.borrow_mut();
        let had = state.record.data.remove(name).is_some();
        state.dirty |= had;
        had
    }

    /// The signed-in user, if any.
    pub fn user_id(&self) -> Option<i64> {
        self.0.borrow().record.user_id
    }

    /// Signs `user_id` in: the session gets a new id (the one before stops working, so an id
    /// planted before the login is worthless after it) and its absolute timeout starts again.
    /// Values stored before stay.
    ///
    /// # Errors
    /// A 500 when the OS has no random bytes.
    pub fn login(&self, user_id: i64) -> Result<()> {
        let mut state = self.0.borrow_mut();
        state.fresh_id()?;
        state.record.user_id = Some(user_id);
        state.record.created = state.now;
        state.record.seen = state.now;
        state.dirty = true;
        Ok(())
    }

    /// Gives the session a new id, keeping its values: call it whenever its privileges
    /// change (a role granted, a password confirmed). [`login`](Self::login) does it itself.
    ///
    /// # Errors
    /// A 500 when the OS has no random bytes.
    pub fn cycle_id(&self) -> Result<()> {
        let mut state = self.0.borrow_mut();
        state.fresh_id()?;
        state.dirty = true;
        Ok(())
    }

    /// Ends the session: its row is deleted (so its cookie stops working on every instance
    /// at once), its cookie removed, and the rest of the request sees an empty anonymous
    /// session.
    pub fn logout(&self) {
        let mut state = self.0.borrow_mut();
        if let Some(key) = state.stored.take() {
            state.destroy = Some(key);
        }
        state.id = None;
        state.new_id = false;
        state.dirty = false;
        state.record = Record::new(state.now);
    }

    /// Queues a message for the next page that calls [`take_flashes`](Self::take_flashes).
    ///
    /// # Errors
    /// As [`insert`](Self::insert).
    pub fn flash(&self, kind: &str, text: impl Into<String>) -> Result<()> {
        let mut flashes: Vec<Flash> = self.get(FLASH).unwrap_or_default();
        flashes.push(Flash {
            kind: kind.to_string(),
            text: text.into(),
        });
        self.insert(FLASH, flashes)
    }

    /// The messages queued by earlier requests, now removed.
    pub fn take_flashes(&self) -> Vec<Flash> {
        let flashes = self.get(FLASH).unwrap_or_default();
        self.remove(FLASH);
        flashes
    }

    /// A CSRF token for a form (the `csrf_token` field) or for htmx's `hx-headers`
    /// (`X-CSRF-Token`), bound to this session; an anonymous visitor gets a session for it.
    ///
    /// # Errors
    /// A 500 when the OS has no random bytes.
    pub fn csrf_token(&self) -> Result<String> {
        let mut state = self.0.borrow_mut();
        if state.id.is_none() {
            state.fresh_id()?;
            // The token is bound to an id the next request must find: store the session.
            state.dirty = true;
        }
        let id = state.id.as_ref().expect("set just above");
        state.csrf.issue(id).map_err(Error::internal)
    }

    /// Whether the request has a session: it came with a live one, or the handler made one
    /// (a value stored, a CSRF token asked for). A page without one may be cached publicly.
    pub fn exists(&self) -> bool {
        self.0.borrow().id.is_some()
    }

    /// Whether the session holds nothing and nobody is signed in.
    pub fn is_empty(&self) -> bool {
        let state = self.0.borrow();
        state.record.data.is_empty() && state.record.user_id.is_none()
    }

    /// A stored value as raw JSON, for templates that show it as it is.
    pub fn get_value(&self, name: &str) -> Option<Value> {
        self.0.borrow().record.data.get(name).cloned()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.0.borrow();
        f.debug_struct("Session")
            .field("user_id", &state.record.user_id)
            .field("names", &state.record.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
