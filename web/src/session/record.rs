//! [`Record`]: what a session holds, as its row and its L1 entry keep it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A session's contents and times (seconds since the Unix epoch, by the store's clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The application's values, by name.
    pub(crate) data: Map<String, Value>,
    /// The signed-in user, if any ([`Session::login`](super::Session::login)).
    pub(crate) user_id: Option<i64>,
    /// When the session began, or was rotated at a login: the absolute timeout counts from
    /// here.
    pub(crate) created: i64,
    /// The last request that used it, as last written (writes of it are spaced out, see
    /// [`Timeouts::touch_due`]).
    pub(crate) seen: i64,
}

impl Record {
    /// An empty session beginning at `now`.
    pub(crate) fn new(now: i64) -> Record {
        Record {
            data: Map::new(),
            user_id: None,
            created: now,
            seen: now,
        }
    }
}

/// The two timeouts, in seconds, and the rules that follow from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) idle: i64,
    pub(crate) absolute: i64,
}

impl Timeouts {
    /// When `r` ends unless it is used again: the earlier of its idle and absolute ends.
    pub(crate) fn expires_at(&self, r: &Record) -> i64 {
        (r.seen + self.idle).min(r.created + self.absolute)
    }

    /// Whether `r` has ended by `now`.
    pub(crate) fn expired(&self, r: &Record, now: i64) -> bool {
        now >= self.expires_at(r)
    }

    /// Whether a request at `now` should write its time to `r`'s row: once a twentieth of the
    /// idle timeout has passed since the last write (90 s of a 30-minute timeout, at least a
    /// second), so that a busy session is not written on every request and the idle timeout
    /// stays within 5 % of its setting.
    pub(crate) fn touch_due(&self, r: &Record, now: i64) -> bool {
        now - r.seen >= (self.idle / 20).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_at_the_earlier_of_its_idle_and_absolute_timeouts() {
        let t = Timeouts {
            idle: 1800,
            absolute: 8 * 3600,
        };
        let mut r = Record::new(1_000);
        assert_eq!(t.expires_at(&r), 2_800);
        assert!(!t.expired(&r, 2_799));
        assert!(t.expired(&r, 2_800));
        // Used often: the absolute timeout ends it.
        r.seen = 1_000 + 8 * 3600 - 60;
        assert_eq!(t.expires_at(&r), 1_000 + 8 * 3600);
        // Touches are spaced by a twentieth of the idle timeout.
        let r = Record::new(0);
        assert!(!t.touch_due(&r, 89));
        assert!(t.touch_due(&r, 90));
        let tiny = Timeouts {
            idle: 5,
            absolute: 60,
        };
        assert!(
            tiny.touch_due(&r, 1),
            "at least a second apart, never every request"
        );
        assert!(!tiny.touch_due(&r, 0));
    }
}
