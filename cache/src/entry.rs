//! What a key holds in any tier: a [`Value`] (typed in process, JSON bytes on the wire), its
//! expiry and its recompute time Δ, plus the [`Ttl`] callers ask for.

use std::any::{type_name, Any};
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// How long a value stays cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ttl {
    /// The cache's `cache_ttl` ([`CacheConfig::cache_ttl`](crate::CacheConfig::cache_ttl),
    /// 300 s unless configured). Unlike Django, "no TTL given" is spelled out, so it cannot be
    /// confused with Django's `timeout=None` (which means forever).
    #[default]
    Default,
    /// Never expires (Django's `timeout=None`); it may still be evicted.
    Forever,
    /// Expires this long after the write. `Duration::ZERO` means "don't cache": a `set` deletes
    /// the key, as Django's `timeout=0` does.
    After(Duration),
}

impl Ttl {
    /// The expiry of a value written at `now`; `None` is never.
    pub(crate) fn expires_at(self, now: SystemTime, default: Duration) -> Option<SystemTime> {
        match self {
            Ttl::Default => now.checked_add(default),
            Ttl::Forever => None,
            Ttl::After(d) => now.checked_add(d),
        }
    }

    /// Whether writing with this TTL stores nothing (Django's `timeout=0`).
    pub(crate) fn is_zero(self) -> bool {
        matches!(self, Ttl::After(d) if d.is_zero())
    }
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Self {
        Ttl::After(d)
    }
}

/// A stored value, type-erased: a typed `T` (any `Serialize` type) or [`Encoded`] bytes.
///
/// One trait object rather than an enum of `Arc<dyn Any>` plus an encode function pointer
/// keeps [`Value`] at 16 bytes, which keeps [`LocMemCache`](crate::LocMemCache)'s entries
/// small (`benches/locmem.rs`: the hit path is bound by cache misses).
trait Stored: Any + Send + Sync {
    /// The value as JSON, for a remote tier.
    fn encode(&self) -> Result<Bytes, Error>;
}

impl<T> Stored for T
where
    T: Serialize + Send + Sync + 'static,
{
    fn encode(&self) -> Result<Bytes, Error> {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .map_err(Error::encode)
    }
}

impl Stored for Encoded {
    fn encode(&self) -> Result<Bytes, Error> {
        Ok(self.bytes.clone())
    }
}

/// A cached value.
///
/// In-process tiers keep it **typed** (an `Arc<T>`, type-erased), so a hit is a downcast
/// and a clone, never a deserialization: `/cached-queries` reads 100 entries a request.
/// Remote tiers keep it **encoded** as JSON ([`Value::to_bytes`] / [`Value::from_bytes`]).
/// JSON rather than a binary format because the PostgreSQL tier's atomic `incr` is one
/// `UPDATE … SET value = (convert_from(value, 'UTF8')::bigint + $1)::text::bytea`, which needs
/// integers stored as text, and because entries stay readable with `psql`.
///
/// An encoded value remembers the first type it was decoded into, so an entry promoted from a
/// remote tier into a local one is deserialized once, not on every hit.
#[derive(Clone)]
pub struct Value {
    stored: Arc<dyn Stored>,
}

struct Encoded {
    bytes: Bytes,
    /// The first successful decoding, as an `Arc<T>`. `OnceLock` because promotion shares this
    /// across threads and the first decoder wins; later readers only do an atomic load.
    decoded: OnceLock<Arc<dyn Any + Send + Sync>>,
}

impl Value {
    /// A typed value.
    pub fn new<T>(value: T) -> Self
    where
        T: Serialize + Send + Sync + 'static,
    {
        Value::from_arc(Arc::new(value))
    }

    /// A typed value already behind an `Arc` (no copy).
    pub fn from_arc<T>(value: Arc<T>) -> Self
    where
        T: Serialize + Send + Sync + 'static,
    {
        Value { stored: value }
    }

    /// An encoded value: JSON bytes, as a remote tier stores them.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Value {
            stored: Arc::new(Encoded {
                bytes: bytes.into(),
                decoded: OnceLock::new(),
            }),
        }
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        &*self.stored
    }

    fn encoded(&self) -> Option<&Encoded> {
        self.as_any().downcast_ref::<Encoded>()
    }

    /// Whether the value is held as bytes (it came from a remote tier).
    pub fn is_encoded(&self) -> bool {
        self.encoded().is_some()
    }

    /// The value as JSON bytes, for a remote tier.
    ///
    /// # Errors
    ///
    /// [`Error::is_encode`] if the value's `Serialize` implementation fails.
    pub fn to_bytes(&self) -> Result<Bytes, Error> {
        self.stored.encode()
    }

    /// A clone of the value as a `T`.
    ///
    /// # Errors
    ///
    /// [`Error::is_type_mismatch`] if the value was stored as another type;
    /// [`Error::is_decode`] if it is encoded and does not deserialize into `T`.
    #[inline]
    pub fn get<T>(&self) -> Result<T, Error>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        match self.as_any().downcast_ref::<T>() {
            Some(t) => Ok(t.clone()),
            None => self.get_shared::<T>().map(|t| T::clone(&t)),
        }
    }

    /// The value as a shared `T`, without cloning the `T` (for large values).
    ///
    /// # Errors
    ///
    /// As [`Value::get`].
    pub fn get_shared<T>(&self) -> Result<Arc<T>, Error>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let any: Arc<dyn Any + Send + Sync> = Arc::clone(&self.stored) as _;
        let any = match any.downcast::<T>() {
            Ok(t) => return Ok(t),
            Err(any) => any,
        };
        let Some(e) = any.downcast_ref::<Encoded>() else {
            return Err(Error::type_mismatch(type_name::<T>()));
        };
        if let Some(t) = e
            .decoded
            .get()
            .and_then(|d| Arc::clone(d).downcast::<T>().ok())
        {
            return Ok(t);
        }
        let t: Arc<T> = Arc::new(serde_json::from_slice(&e.bytes).map_err(Error::decode)?);
        // Another thread may have decoded first (same bytes, so an equal value): fine.
        let _ = e.decoded.set(Arc::clone(&t) as Arc<dyn Any + Send + Sync>);
        Ok(t)
    }

    /// The value plus `delta`, if it is an integer: the new value and the result as `i64`.
    /// A typed integer keeps its type (a `u32` stays a `u32`); an encoded one must be a JSON
    /// integer and comes back typed `i64`.
    pub(crate) fn incr(&self, delta: i64) -> Result<(Value, i64), Error> {
        match self.encoded() {
            None => incr_typed(self.as_any(), delta),
            Some(e) => {
                let current: i64 =
                    serde_json::from_slice(&e.bytes).map_err(|_| Error::not_integer())?;
                let new = current.checked_add(delta).ok_or_else(Error::overflow)?;
                Ok((Value::new(new), new))
            }
        }
    }
}

/// `incr` on a typed value: tries each integer type in turn (a handful of `TypeId` compares).
fn incr_typed(any: &(dyn Any + Send + Sync), delta: i64) -> Result<(Value, i64), Error> {
    macro_rules! try_int {
        ($($t:ty),*) => {$(
            if let Some(v) = any.downcast_ref::<$t>() {
                let current = i128::try_from(*v).map_err(|_| Error::overflow())?;
                let new = current + i128::from(delta);
                let stored = <$t>::try_from(new).map_err(|_| Error::overflow())?;
                let result = i64::try_from(new).map_err(|_| Error::overflow())?;
                return Ok((Value::new(stored), result));
            }
        )*};
    }
    try_int!(i64, i32, u64, u32, usize, isize, i16, u16, i8, u8);
    Err(Error::not_integer())
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.encoded() {
            None => f.write_str("Value::Typed(..)"),
            Some(e) => f
                .debug_tuple("Value::Encoded")
                .field(&String::from_utf8_lossy(&e.bytes))
                .finish(),
        }
    }
}

/// What XFetch needs to know about a stored value besides the value: its expiry and how long
/// it took to compute ([`Cache::get_stamped`](crate::Cache::get_stamped)). Plain data, so a
/// read-through hit does not have to clone the whole [`Entry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// When the value expires (`None`: never).
    pub expires_at: Option<SystemTime>,
    /// How long computing it took (zero when unknown).
    pub delta: Duration,
}

impl Stamp {
    /// The stamp of `entry`.
    pub fn of(entry: &Entry) -> Stamp {
        Stamp {
            expires_at: entry.expires_at(),
            delta: entry.delta(),
        }
    }
}

/// A value with its expiry and recompute time, as every tier stores it.
///
/// `expires_at` is the value's own expiry, the one XFetch compares with and a remote tier
/// stores. `keep_until` is an earlier bound a tier may put on how long *it* holds the entry
/// (the L1 TTL of a [`TwoTierCache`](crate::TwoTierCache)) without changing the value's expiry;
/// a tier drops the entry at [`Entry::deadline`], the earlier of the two.
#[derive(Debug, Clone)]
pub struct Entry {
    value: Value,
    expires_at: Option<SystemTime>,
    delta: Duration,
    keep_until: Option<SystemTime>,
}

impl Entry {
    /// An entry expiring at `expires_at` (`None`: never), with no recompute time.
    pub fn new(value: Value, expires_at: Option<SystemTime>) -> Self {
        Entry {
            value,
            expires_at,
            delta: Duration::ZERO,
            keep_until: None,
        }
    }

    /// Sets the recompute time Δ: how long computing the value took (XFetch).
    pub fn with_delta(mut self, delta: Duration) -> Self {
        self.delta = delta;
        self
    }

    /// Sets how long the tier holding the entry keeps it at most.
    pub fn with_keep_until(mut self, keep_until: Option<SystemTime>) -> Self {
        self.keep_until = keep_until;
        self
    }

    /// Replaces the expiry (`touch`).
    pub fn with_expires_at(mut self, expires_at: Option<SystemTime>) -> Self {
        self.expires_at = expires_at;
        self
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The value, by value.
    pub fn into_value(self) -> Value {
        self.value
    }

    /// When the value expires; `None` is never.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// How long computing the value took; zero when unknown (then XFetch never recomputes it
    /// early).
    pub fn delta(&self) -> Duration {
        self.delta
    }

    /// The holding tier's own bound, if any (see the type's doc).
    pub fn keep_until(&self) -> Option<SystemTime> {
        self.keep_until
    }

    /// When the holding tier drops the entry: the earlier of `expires_at` and `keep_until`.
    /// A remote backend that stores one timestamp stores this one.
    pub fn deadline(&self) -> Option<SystemTime> {
        match (self.expires_at, self.keep_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the entry is still served at `now`.
    #[inline]
    pub fn is_live(&self, now: SystemTime) -> bool {
        match self.deadline() {
            Some(deadline) => now < deadline,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn typed_values_round_trip_without_encoding() {
        let v = Value::new(vec![1u32, 2, 3]);
        assert!(!v.is_encoded());
        assert_eq!(std::mem::size_of::<Value>(), 16);
        assert_eq!(v.get::<Vec<u32>>().unwrap(), vec![1, 2, 3]);
        assert!(v.get::<String>().unwrap_err().is_type_mismatch());
        assert_eq!(&v.to_bytes().unwrap()[..], b"[1,2,3]");
    }

    #[test]
    fn encoded_values_decode_once_per_type() {
        let v = Value::from_bytes(&b"[1,2,3]"[..]);
        let a = v.get_shared::<Vec<u32>>().unwrap();
        let b = v.clone().get_shared::<Vec<u32>>().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "second read reuses the first decoding");
        assert_eq!(v.get::<Vec<u64>>().unwrap(), vec![1, 2, 3]);
        assert!(v.get::<String>().unwrap_err().is_decode());
    }

    #[test]
    fn incr_keeps_the_integer_type() {
        let (v, n) = Value::new(41u32).incr(1).unwrap();
        assert_eq!((v.get::<u32>().unwrap(), n), (42, 42));
        assert!(Value::new(0u8).incr(-1).unwrap_err().is_overflow());
        assert!(Value::new("x".to_owned())
            .incr(1)
            .unwrap_err()
            .is_not_integer());
        let (v, n) = Value::from_bytes(&b"10"[..]).incr(-3).unwrap();
        assert_eq!((v.get::<i64>().unwrap(), n), (7, 7));
        assert!(Value::from_bytes(&b"1.5"[..])
            .incr(1)
            .unwrap_err()
            .is_not_integer());
    }

    #[test]
    fn deadline_is_the_earlier_bound() {
        let t = |s| Some(UNIX_EPOCH + Duration::from_secs(s));
        let e = Entry::new(Value::new(1), t(100)).with_keep_until(t(10));
        assert_eq!((e.deadline(), e.expires_at()), (t(10), t(100)));
        assert!(e.is_live(t(9).unwrap()) && !e.is_live(t(10).unwrap()));
        assert_eq!(Entry::new(Value::new(1), None).deadline(), None);
        let now = UNIX_EPOCH;
        assert_eq!(Ttl::Forever.expires_at(now, Duration::from_secs(5)), None);
        assert_eq!(Ttl::Default.expires_at(now, Duration::from_secs(5)), t(5));
        assert!(Ttl::After(Duration::ZERO).is_zero() && !Ttl::Default.is_zero());
    }
}
