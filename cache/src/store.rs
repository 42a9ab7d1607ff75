//! The sharded map behind [`LocMemCache`](crate::LocMemCache): real key → [`Slot`].
//!
//! Shards are `quick_cache`'s single-threaded cache, each behind a `std` `RwLock`, rather than
//! `quick_cache::sync::Cache` (the same shards behind `parking_lot` locks). The difference is
//! what a hit costs: `sync::Cache::get` returns a *clone* of the stored value, and a clone of a
//! typed [`Value`] is an `Arc` increment and, later, a decrement, two locked writes to the
//! value's cache line that the other cores' hits then have to fetch back. Holding the lock
//! ourselves, a hit checks the deadline, downcasts and clones the `T` straight out of the
//! stored `Arc`, which stays read-only and shared between cores' caches (`benches/locmem.rs`,
//! `get/2t/locmem`), or out of the entry itself for a small value ([`Inline`]).
//!
//! A lookup hashes its key once, by us: the hash picks the shard, and the shard's map reuses it
//! ([`KeyHasher`]). The hash of a real key is defined so that it can be computed from Django's
//! `"{prefix}:{version}:"` head and the caller's key separately ([`split`]): a [`Probe`] for a
//! `get` never builds the real key.

use std::any::{type_name, TypeId};
use std::hash::{BuildHasher, Hash, Hasher};
use std::mem::{align_of, needs_drop, size_of, MaybeUninit};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use quick_cache::{unsync, DefaultHashBuilder, Equivalent, Lifecycle, UnitWeighter};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::nanos_since_epoch;
use crate::{Entry, Error, Stamp, Value};

/// A stored time meaning "never".
const NEVER: u64 = u64::MAX;

/// Real-key bytes held inline in a [`StoreKey`]: `":1:world:10000"` and most real keys fit,
/// so a lookup compares them without following a pointer to the heap.
const INLINE: usize = 22;

/// One shard's map. `unsync`: the shard's lock is ours.
pub(crate) type Map = unsync::Cache<StoreKey, Slot, UnitWeighter, KeyHash, Evictions>;

/// A stored [`Entry`], compacted: times as nanoseconds since the Unix epoch ([`NEVER`] for
/// none) instead of `Option<SystemTime>`s, and a small value held in place ([`Held`]).
pub(crate) struct Slot {
    held: Held,
    expires: u64,
    keep: u64,
    delta: u64,
}

impl Slot {
    /// `value` expiring at `expires_at` (`None`: never), with no recompute time; held in
    /// place if it is small ([`Inline`]).
    pub(crate) fn typed<T>(value: T, expires_at: Option<SystemTime>) -> Slot
    where
        T: Serialize + Send + Sync + 'static,
    {
        let held = match Inline::new(value) {
            Ok(inline) => Held::Inline(inline),
            Err(value) => Held::Shared(Value::new(value)),
        };
        Slot {
            held,
            expires: to_nanos(expires_at),
            keep: NEVER,
            delta: 0,
        }
    }

    /// The stored form of `entry`; [`Slot::to_entry`] gives it back unchanged.
    pub(crate) fn from_entry(entry: Entry) -> Slot {
        let (expires, keep, delta) = (entry.expires_at(), entry.keep_until(), entry.delta());
        Slot {
            held: Held::Shared(entry.into_value()),
            expires: to_nanos(expires),
            keep: to_nanos(keep),
            delta: u64::try_from(delta.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// The entry this slot stores (an `Arc` clone of the value), or `None` if the value is
    /// held in place: [`Slot::share`] it first, under the write lock.
    pub(crate) fn to_entry(&self) -> Option<Entry> {
        let Held::Shared(value) = &self.held else {
            return None;
        };
        Some(
            Entry::new(value.clone(), to_time(self.expires))
                .with_delta(Duration::from_nanos(self.delta))
                .with_keep_until(to_time(self.keep)),
        )
    }

    /// The slot's expiry and recompute time.
    #[inline]
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp {
            expires_at: to_time(self.expires),
            delta: Duration::from_nanos(self.delta),
        }
    }

    /// A clone of the value as a `T`, as [`Value::get`].
    #[inline]
    pub(crate) fn get<T>(&self) -> Result<T, Error>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        match &self.held {
            Held::Inline(inline) => inline
                .get::<T>()
                .cloned()
                .ok_or_else(|| Error::type_mismatch(type_name::<T>())),
            Held::Shared(value) => value.get::<T>(),
        }
    }

    /// The value as a shared `T`, as [`Value::get_shared`], or `None` if it is a `T` held in
    /// place: [`Slot::share`] it first, under the write lock.
    pub(crate) fn get_shared<T>(&self) -> Option<Result<Arc<T>, Error>>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        match &self.held {
            Held::Inline(inline) if inline.type_id == TypeId::of::<T>() => None,
            Held::Inline(_) => Some(Err(Error::type_mismatch(type_name::<T>()))),
            Held::Shared(value) => Some(value.get_shared::<T>()),
        }
    }

    /// The value as a shared [`Value`], moving a value held in place into an `Arc` first (for
    /// `incr`, `get_entry`, `get_shared`: whatever hands the value out or replaces it).
    pub(crate) fn share(&mut self) -> &Value {
        if let Held::Inline(inline) = &self.held {
            // SAFETY: the `Inline` is overwritten right below, never read again.
            let value = unsafe { (inline.share)(inline) };
            self.held = Held::Shared(value);
        }
        match &self.held {
            Held::Shared(value) => value,
            Held::Inline(_) => unreachable!("just shared"),
        }
    }

    /// Replaces the value, keeping the times (`incr`).
    pub(crate) fn set_value(&mut self, value: Value) {
        self.held = Held::Shared(value);
    }

    /// Replaces the expiry (`touch`).
    pub(crate) fn set_expires_at(&mut self, expires_at: Option<SystemTime>) {
        self.expires = to_nanos(expires_at);
    }

    /// Whether the slot is live at `now` (nanoseconds since the epoch), as
    /// [`Entry::is_live`].
    #[inline]
    pub(crate) fn is_live_at(&self, now: u64) -> bool {
        let deadline = self.expires.min(self.keep);
        deadline == NEVER || now < deadline
    }
}

/// A slot's value: shared (an `Arc`, as [`Value`] holds it) or, if it is small, in place.
enum Held {
    Shared(Value),
    Inline(Inline),
}

/// A value of at most [`INLINE_VALUE`] bytes, aligned to at most 8, without drop glue (a
/// TechEmpower `World`, an integer), held in the slot itself.
///
/// A hit then clones it from the slot's own cache line instead of following the `Arc` to
/// another one: in `benches/locmem.rs` that dependent miss was a quarter of `get/1t/locmem`
/// (44 → 37 ns once the `World` moved into the entry; skipping the read altogether gave 34 ns)
/// and more at two threads.
///
/// The value lives in one place at a time: here until something needs it shared
/// ([`Slot::share`] moves it into an `Arc`), never copied, so in-place mutation through
/// interior mutability behaves as with an `Arc`.
struct Inline {
    bytes: InlineBytes,
    /// The type of the value in `bytes`.
    type_id: TypeId,
    /// Moves the value out into a [`Value`]: `share_inline::<T>` for the `T` in `bytes`.
    share: unsafe fn(&Inline) -> Value,
}

/// The largest value [`Inline`] holds, in bytes.
const INLINE_VALUE: usize = 16;

/// The storage of an [`Inline`] value: aligned to 8 on every target (a `u64` is only 4-aligned
/// on i686), and [`Inline::new`] admits no type aligned more than this.
#[repr(C, align(8))]
struct InlineBytes([MaybeUninit<u8>; INLINE_VALUE]);

const _: () = assert!(align_of::<InlineBytes>() >= 8 && size_of::<InlineBytes>() == INLINE_VALUE);

impl Inline {
    /// `value` held in place, or back if it does not fit.
    fn new<T>(value: T) -> Result<Inline, T>
    where
        T: Serialize + Send + Sync + 'static,
    {
        if size_of::<T>() > INLINE_VALUE
            || align_of::<T>() > align_of::<InlineBytes>()
            || needs_drop::<T>()
        {
            return Err(value);
        }
        let mut bytes = InlineBytes([MaybeUninit::uninit(); INLINE_VALUE]);
        // SAFETY: just checked: a `T` fits in `bytes`, which is aligned at least as `T`, and
        // whose `MaybeUninit` contents may be overwritten.
        unsafe { bytes.0.as_mut_ptr().cast::<T>().write(value) };
        Ok(Inline {
            bytes,
            type_id: TypeId::of::<T>(),
            share: share_inline::<T>,
        })
    }

    /// The value, if it is a `T`.
    #[inline]
    fn get<T: 'static>(&self) -> Option<&T> {
        if self.type_id != TypeId::of::<T>() {
            return None;
        }
        // SAFETY: `type_id` says `bytes` holds the `T` that `Inline::new::<T>` wrote there;
        // nothing moves it out while the `Inline` is in use (`share` is the last use).
        Some(unsafe { &*self.bytes.0.as_ptr().cast::<T>() })
    }
}

/// Moves the `T` out of `inline` into a [`Value`].
///
/// # Safety
///
/// `inline` was made by `Inline::new::<T>`, and is not used again afterwards (the read moves
/// the value out; a `T` without drop glue needs no other cleanup).
unsafe fn share_inline<T>(inline: &Inline) -> Value
where
    T: Serialize + Send + Sync + 'static,
{
    // SAFETY: per this function's contract, `bytes` holds a `T` written by `Inline::new::<T>`
    // that nothing else reads afterwards.
    let value = unsafe { inline.bytes.0.as_ptr().cast::<T>().read() };
    Value::new(value)
}

fn to_nanos(t: Option<SystemTime>) -> u64 {
    t.map_or(NEVER, |t| nanos_since_epoch(t).min(NEVER - 1))
}

fn to_time(nanos: u64) -> Option<SystemTime> {
    (nanos != NEVER).then(|| UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// Where a real key's hash is cut in two: after its second `:` (so `"{prefix}:{version}:"` and
/// the caller's key when the prefix has no `:`), or at the start if it has fewer.
///
/// Hashing the two halves separately lets a default-layout lookup hash the head once per cache
/// ([`Head`]) and only the caller's key per lookup, and still find entries written through
/// [`Cache::set_entry`](crate::Cache::set_entry) with the real key as one string.
fn split(real: &[u8]) -> (&[u8], &[u8]) {
    let mut colons = real.iter().enumerate().filter(|&(_, &b)| b == b':');
    match colons.nth(1) {
        Some((i, _)) => real.split_at(i + 1),
        None => (&[], real),
    }
}

/// A stored real key. Its hash is not kept (8 bytes more per entry): the map only needs it
/// again when it grows.
pub(crate) struct StoreKey {
    text: KeyText,
}

/// Real-key bytes: inline up to [`INLINE`] bytes, else boxed.
enum KeyText {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl KeyText {
    fn new(head: &[u8], tail: &[u8]) -> KeyText {
        let len = head.len() + tail.len();
        match u8::try_from(len) {
            Ok(short) if len <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..head.len()].copy_from_slice(head);
                bytes[head.len()..len].copy_from_slice(tail);
                KeyText::Inline { len: short, bytes }
            }
            _ => KeyText::Heap([head, tail].concat().into_boxed_slice()),
        }
    }

    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            KeyText::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyText::Heap(bytes) => bytes,
        }
    }
}

impl PartialEq for StoreKey {
    fn eq(&self, other: &StoreKey) -> bool {
        self.text.as_bytes() == other.text.as_bytes()
    }
}

impl Eq for StoreKey {}

/// Writes the real key's bytes in one call: [`KeyHasher`] splits them.
impl Hash for StoreKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.text.as_bytes());
    }
}

/// A real key to look up, in two halves (see [`split`]), with its hash.
pub(crate) struct Probe<'a> {
    hash: u64,
    head: &'a [u8],
    tail: &'a [u8],
}

impl Probe<'_> {
    /// The key to store under.
    pub(crate) fn to_key(&self) -> StoreKey {
        StoreKey {
            text: KeyText::new(self.head, self.tail),
        }
    }
}

/// Writes the hash the probe carries: [`KeyHasher`] passes it through.
impl Hash for Probe<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Equivalent<StoreKey> for Probe<'_> {
    #[inline]
    fn equivalent(&self, key: &StoreKey) -> bool {
        let text = key.text.as_bytes();
        text.len() == self.head.len() + self.tail.len()
            && matches!(text.split_at_checked(self.head.len()),
                        Some((head, tail)) if eq_short(head, self.head) && eq_short(tail, self.tail))
    }
}

/// `a == b` for short slices, without a call to `memcmp` (two per lookup were 6% of
/// `get/1t/locmem` in `benches/locmem.rs`): whole words, the last one overlapping.
#[inline]
fn eq_short(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    if n >= 8 {
        let (mut a_rest, mut b_rest) = (a, b);
        while let (Some((x, a_next)), Some((y, b_next))) = (
            a_rest.split_first_chunk::<8>(),
            b_rest.split_first_chunk::<8>(),
        ) {
            if x != y {
                return false;
            }
            (a_rest, b_rest) = (a_next, b_next);
        }
        a.last_chunk::<8>() == b.last_chunk::<8>()
    } else if n >= 4 {
        a.first_chunk::<4>() == b.first_chunk::<4>() && a.last_chunk::<4>() == b.last_chunk::<4>()
    } else {
        // Up to three bytes: the first, the middle and the last cover them all.
        n == 0 || (a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1])
    }
}

/// `quick_cache`'s (seeded) hasher, which [`KeyHasher`] runs on the two halves of a key.
type Inner = <DefaultHashBuilder as BuildHasher>::Hasher;

/// A `"{prefix}:{version}:"` head, hashed once: the state every [`Store::probe_in`] continues.
#[derive(Clone)]
pub(crate) struct Head {
    text: Box<str>,
    state: Inner,
}

/// The shards' hasher, shared by every shard and [`Store::probe`].
#[derive(Clone, Default)]
pub(crate) struct KeyHash(DefaultHashBuilder);

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    #[inline]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            state: self.0.build_hasher(),
            carried: None,
        }
    }
}

/// Hashes a real key's bytes as its two [`split`] halves, one after the other, so that a
/// [`Head`] can hash the first half once for every key; passes a [`Probe`]'s hash through
/// (`write_u64`), so a lookup hashes once, not once for the shard and once in the map.
pub(crate) struct KeyHasher {
    state: Inner,
    carried: Option<u64>,
}

impl Hasher for KeyHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.carried.unwrap_or_else(|| self.state.finish())
    }

    fn write(&mut self, bytes: &[u8]) {
        let (head, tail) = split(bytes);
        self.state.write(head);
        self.state.write(tail);
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.carried = Some(n);
    }
}

/// `quick_cache` lifecycle hook: counts evictions and holds evicted entries until the shard
/// lock is released, so dropping a large value never happens under the lock.
#[derive(Clone)]
pub(crate) struct Evictions(Arc<AtomicU64>);

impl Lifecycle<StoreKey, Slot> for Evictions {
    type RequestState = [Option<(StoreKey, Slot)>; 2];

    fn begin_request(&self) -> Self::RequestState {
        [None, None]
    }

    fn on_evict(&self, state: &mut Self::RequestState, key: StoreKey, val: Slot) {
        // Evictions happen under a shard's write lock, rarely: an atomic is fine here.
        self.0.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = state.iter_mut().find(|s| s.is_none()) {
            *slot = Some((key, val));
        }
    }
}

/// Shards per CPU. quick_cache's `sync::Cache` uses 4; more shards make two cores less
/// likely to want the same shard lock at once: `get/2t/locmem` in `benches/locmem.rs` went
/// from 52 to 45 ns (raw `quick_cache` 45–46 ns in the same runs), `get/1t` unchanged.
const SHARDS_PER_CPU: usize = 16;

/// One shard, on its own cache lines so that locking it does not disturb its neighbours.
#[repr(align(128))]
struct Shard(RwLock<Map>);

/// Real key → [`Slot`], sharded by hash.
pub(crate) struct Store {
    shards: Box<[Shard]>,
    /// Shard count − 1 (a power of two).
    mask: usize,
    hasher: KeyHash,
    evictions: Arc<AtomicU64>,
}

impl Store {
    /// A store of about `max_entries` (at least 1), split over [`SHARDS_PER_CPU`] shards per
    /// CPU, fewer if that leaves shards under 32 entries (as `quick_cache::sync::Cache` does).
    pub(crate) fn new(max_entries: usize) -> Store {
        let capacity = max_entries.max(1);
        let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let mut shards = (cpus * SHARDS_PER_CPU).next_power_of_two();
        while shards > 1 && capacity.div_ceil(shards) < 32 {
            shards /= 2;
        }
        let per_shard = capacity.div_ceil(shards);
        let evictions = Arc::new(AtomicU64::new(0));
        let hasher = KeyHash::default();
        let shards: Box<[Shard]> = (0..shards)
            .map(|_| {
                Shard(RwLock::new(Map::with(
                    per_shard,
                    per_shard as u64,
                    UnitWeighter,
                    hasher.clone(),
                    Evictions(Arc::clone(&evictions)),
                )))
            })
            .collect();
        Store {
            mask: shards.len() - 1,
            shards,
            hasher,
            evictions,
        }
    }

    /// The probe for a whole real key.
    pub(crate) fn probe<'a>(&self, real: &'a str) -> Probe<'a> {
        let (head, tail) = split(real.as_bytes());
        Probe {
            hash: self.hasher.hash_one(StoreKeyBytes(real.as_bytes())),
            head,
            tail,
        }
    }

    /// `head` hashed once, if [`split`] cuts every `head + key` right after it (the head has
    /// exactly two `:`, the last one at its end); `None` otherwise (a prefix with a `:`).
    pub(crate) fn head(&self, head: &str) -> Option<Head> {
        if split(head.as_bytes()) != (head.as_bytes(), &[][..]) {
            return None;
        }
        let mut state = self.hasher.0.build_hasher();
        state.write(head.as_bytes());
        Some(Head {
            text: head.into(),
            state,
        })
    }

    /// The probe for the real key `head + key`, hashing only `key`.
    #[inline(always)]
    pub(crate) fn probe_in<'a>(&self, head: &'a Head, key: &'a str) -> Probe<'a> {
        let mut state = head.state.clone();
        state.write(key.as_bytes());
        Probe {
            hash: state.finish(),
            head: head.text.as_bytes(),
            tail: key.as_bytes(),
        }
    }

    #[inline]
    fn shard(&self, probe: &Probe<'_>) -> &RwLock<Map> {
        // Bits the shard's own table does not use: it takes the low ones for its buckets and
        // the top seven for its tags.
        &self.shards[(probe.hash >> 40) as usize & self.mask].0
    }

    /// `read` of the live-or-not slot under `probe`, under the shard's read lock, counting as
    /// an access for eviction. `read` runs under the lock: keep it short.
    #[inline]
    pub(crate) fn get<R>(&self, probe: &Probe<'_>, read: impl FnOnce(&Slot) -> R) -> Option<R> {
        let map = self
            .shard(probe)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(probe).map(read)
    }

    /// As [`Store::get`], without counting as an access.
    pub(crate) fn peek<R>(&self, probe: &Probe<'_>, read: impl FnOnce(&Slot) -> R) -> Option<R> {
        let map = self
            .shard(probe)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.peek(probe).map(read)
    }

    /// Runs `update` on the shard's map under its write lock: the atomic operations (`add`,
    /// `touch`, `incr`). Whatever it returns is dropped after the lock is released.
    pub(crate) fn write<R>(&self, probe: &Probe<'_>, update: impl FnOnce(&mut Map) -> R) -> R {
        let mut map = self
            .shard(probe)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        update(&mut map)
    }

    /// Stores `slot` under `key`, replacing any slot.
    pub(crate) fn insert(&self, probe: &Probe<'_>, slot: Slot) {
        let key = probe.to_key();
        let evicted = self.write(probe, |map| map.insert_with_lifecycle(key, slot));
        drop(evicted);
    }

    /// Removes the slot under `probe`.
    pub(crate) fn remove(&self, probe: &Probe<'_>) -> Option<Slot> {
        self.write(probe, |map| map.remove(probe))
            .map(|(_, slot)| slot)
    }

    /// Removes the slot under `probe` if `pred` holds for it (checked under the write lock).
    pub(crate) fn remove_if(
        &self,
        probe: &Probe<'_>,
        pred: impl FnOnce(&Slot) -> bool,
    ) -> Option<Slot> {
        self.write(probe, |map| map.remove_if(probe, pred))
            .map(|(_, slot)| slot)
    }

    /// Removes every slot.
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            let drained: Vec<(StoreKey, Slot)> = shard
                .0
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .drain()
                .collect();
            drop(drained);
        }
    }

    /// Slots held now.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// How many slots the store holds before it evicts.
    pub(crate) fn capacity(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| {
                s.0.read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .capacity()
            })
            .sum()
    }

    /// Slots evicted so far.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

/// A real key's bytes, hashed as a [`StoreKey`] holding them would be.
struct StoreKeyBytes<'a>(&'a [u8]);

impl Hash for StoreKeyBytes<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_values_are_stored_at_their_alignment() {
        #[derive(serde::Serialize, Clone, Copy, PartialEq, Debug)]
        #[repr(align(8))]
        struct Aligned(u64);
        let inline = Inline::new(Aligned(7)).expect("fits");
        let held = inline.get::<Aligned>().expect("a held value");
        assert_eq!(*held, Aligned(7));
        assert_eq!(std::ptr::from_ref(held) as usize % align_of::<Aligned>(), 0);
        // A type aligned more than the slot is refused, not misplaced.
        #[derive(serde::Serialize)]
        #[repr(align(16))]
        struct Wide(u8);
        assert!(Inline::new(Wide(1)).is_err());
    }

    #[test]
    fn split_cuts_after_the_second_colon() {
        let split = |s: &'static str| {
            let (a, b) = split(s.as_bytes());
            (
                std::str::from_utf8(a).unwrap(),
                std::str::from_utf8(b).unwrap(),
            )
        };
        assert_eq!(split(":1:world:5"), (":1:", "world:5"));
        assert_eq!(split("site:7:k"), ("site:7:", "k"));
        assert_eq!(split("flat"), ("", "flat"));
        assert_eq!(split("a:b"), ("", "a:b"));
    }

    #[test]
    fn a_head_probe_finds_a_whole_key_probe() {
        let store = Store::new(100);
        let head = store.head(":1:").unwrap();
        store.insert(&store.probe(":1:world:5"), Slot::typed(5u32, None));
        let hit = store.get(&store.probe_in(&head, "world:5"), Slot::get::<u32>);
        assert_eq!(hit.map(Result::unwrap), Some(5));
        assert!(store
            .get(&store.probe_in(&head, "world:6"), |_| ())
            .is_none());
        assert!(store.head("a:b:1:").is_none(), "a prefix with a colon");
    }

    #[test]
    fn short_comparisons_are_exact() {
        let text = b"abcdefghijklmnopqrstuvwxyz";
        for n in 0..text.len() {
            let a = &text[..n];
            assert!(eq_short(a, a), "{n}");
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] ^= 1;
                assert!(!eq_short(a, &b), "{n} {i}");
            }
            assert!(!eq_short(a, &text[..n + 1]));
        }
    }

    #[test]
    fn long_keys_go_to_the_heap() {
        let store = Store::new(100);
        let long = format!(":1:{}", "x".repeat(100));
        store.insert(&store.probe(&long), Slot::typed(1u8, None));
        assert!(store.peek(&store.probe(&long), |_| ()).is_some());
        assert!(store.peek(&store.probe(&long[..50]), |_| ()).is_none());
    }

    #[test]
    fn entries_round_trip_exactly() {
        let t = |n| Some(UNIX_EPOCH + Duration::from_nanos(n));
        let entry = Entry::new(Value::new(1u8), t(1_000_000_000_123))
            .with_delta(Duration::from_nanos(4_567))
            .with_keep_until(t(999));
        let back = Slot::from_entry(entry).to_entry().unwrap();
        assert_eq!(back.expires_at(), t(1_000_000_000_123));
        assert_eq!(back.keep_until(), t(999));
        assert_eq!(back.delta(), Duration::from_nanos(4_567));
        let forever = Slot::from_entry(Entry::new(Value::new(1u8), None))
            .to_entry()
            .unwrap();
        assert_eq!((forever.expires_at(), forever.keep_until()), (None, None));
        assert_eq!(size_of::<Slot>(), 64);
        assert_eq!(size_of::<StoreKey>(), 24);
    }

    #[test]
    fn small_values_are_held_in_place_until_shared() {
        let mut slot = Slot::typed((1u32, 2u64), None);
        assert!(matches!(slot.held, Held::Inline(_)));
        assert_eq!(slot.get::<(u32, u64)>().unwrap(), (1, 2));
        assert!(slot.get::<(u32, u32)>().unwrap_err().is_type_mismatch());
        assert!(
            slot.get_shared::<(u32, u64)>().is_none(),
            "needs sharing first"
        );
        assert!(slot
            .get_shared::<u8>()
            .unwrap()
            .unwrap_err()
            .is_type_mismatch());
        assert!(slot.to_entry().is_none());
        let shared = slot.share().get_shared::<(u32, u64)>().unwrap();
        assert_eq!(*shared, (1, 2));
        let again = slot.get_shared::<(u32, u64)>().unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&shared, &again),
            "moved into one Arc, not copied"
        );
        assert_eq!(
            slot.to_entry()
                .unwrap()
                .value()
                .get::<(u32, u64)>()
                .unwrap(),
            (1, 2)
        );
        let big = Slot::typed([7u64; 3], None);
        assert!(matches!(big.held, Held::Shared(_)), "too large");
        let owning = Slot::typed(String::from("x"), None);
        assert!(matches!(owning.held, Held::Shared(_)), "has drop glue");
    }
}
