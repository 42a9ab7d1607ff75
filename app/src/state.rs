//! What each worker thread's handlers share.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pinion_cache::{LocMemCache, StampedeProtection};
use pinion_orm::{ConnectionManager, Routing};
use pinion_server::cookie::{self, Cookie};
use pinion_server::sse::Broadcast;
use pinion_server::{Ctx, Error, Request, StatusCode};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::assets::Assets;
use crate::layout::Layout;
use crate::live::WorldFeed;

/// The cache behind `/cached-queries`.
pub type WorldCache = StampedeProtection<LocMemCache>;

/// Name of the cookie that keeps a client's reads on the primary after it wrote.
pub const STICKY_COOKIE: &str = "pinion_primary";

/// Per-thread state of the application, built on the worker thread that uses it.
pub struct AppState {
    /// Number of worker threads in this process (shown on the index page).
    pub threads: usize,
    /// The databases, when one is configured.
    pub db: Option<Rc<ConnectionManager>>,
    /// How long a client's reads stay on the primary after it wrote (0: off).
    pub sticky_window: Duration,
    /// The process-wide in-memory cache of `world` rows for `/cached-queries`: one
    /// LocMemCache shared by every thread (sharded and lock-protected inside), with
    /// single-flight read-through and XFetch around it.
    pub worlds: Arc<WorldCache>,
    /// This worker's subscribers to `world` updates (`GET /worlds/live`).
    pub live: Rc<Broadcast>,
    /// The process-wide feed that hands an update to every worker's [`live`](Self::live).
    pub feed: Arc<WorldFeed>,
    /// The process-wide metrics, for `/metrics` (None: telemetry off).
    pub telemetry: Option<Arc<pinion_server::telemetry::Telemetry>>,
    /// The static files, read once at start-up and shared by every worker (`/static/…`, and
    /// the URLs pages link); none until [`with_assets`](Self::with_assets).
    pub assets: Arc<Assets>,
    /// This worker's live pages (pinion-events), with a database.
    pub events: Option<Rc<pinion_events::Live>>,
    /// Whether the process's listening connection is up (readiness reports it).
    pub listener: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// The process's build, readiness and database gauges, which `/metrics` sets at each
    /// scrape (None: telemetry off).
    pub monitoring: Option<Arc<crate::monitoring::Monitoring>>,
    /// A fast, per-thread random source (ids and numbers for the TechEmpower routes); seeded
    /// per thread, never shared, so no lock.
    rng: RefCell<SmallRng>,
}

impl AppState {
    /// State for worker `worker`, joined to `feed`.
    ///
    /// # Panics
    /// Outside the worker's monoio runtime (the feed's relay task is spawned there).
    pub fn new(
        threads: usize,
        worker: usize,
        db: Option<Rc<ConnectionManager>>,
        sticky_window: Duration,
        worlds: Arc<WorldCache>,
        feed: Arc<WorldFeed>,
        telemetry: Option<Arc<pinion_server::telemetry::Telemetry>>,
    ) -> AppState {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ ((worker as u64) << 48);
        AppState {
            threads,
            db,
            sticky_window,
            worlds,
            live: feed.join(),
            feed,
            telemetry,
            assets: Arc::new(Assets::empty()),
            events: None,
            listener: None,
            monitoring: None,
            rng: RefCell::new(SmallRng::seed_from_u64(seed)),
        }
    }

    /// With the process's static files (`pinion serve` loads them from `static_dir`).
    pub fn with_assets(self, assets: Arc<Assets>) -> AppState {
        AppState { assets, ..self }
    }

    /// The state with this worker's live pages and the listening connection's state.
    pub fn with_events(
        self,
        events: Option<Rc<pinion_events::Live>>,
        listener: Option<Arc<std::sync::atomic::AtomicBool>>,
    ) -> AppState {
        AppState {
            events,
            listener,
            ..self
        }
    }

    /// The state with the process's monitoring gauges.
    pub fn with_monitoring(
        self,
        monitoring: Option<Arc<crate::monitoring::Monitoring>>,
    ) -> AppState {
        AppState { monitoring, ..self }
    }

    /// This worker's live pages, or a 503 without a database.
    ///
    /// # Errors
    /// 503 Service Unavailable without a database.
    pub fn events(&self) -> Result<&pinion_events::Live, Error> {
        self.events
            .as_deref()
            .ok_or_else(|| Error::new(StatusCode::SERVICE_UNAVAILABLE, "no database configured"))
    }

    /// The layout of a full page (`templates/base.html`): this process's asset URLs, no CSRF
    /// token and no messages yet.
    pub fn layout(&self) -> Layout<'_> {
        Layout::new(&self.assets)
    }

    /// A random `world` id or number, 1..=10000.
    pub fn random_world_value(&self) -> i32 {
        self.rng
            .borrow_mut()
            .random_range(1..=crate::techempower::world::WORLD_ROWS)
    }

    /// The databases, or a 503 when none is configured.
    ///
    /// # Errors
    /// 503 Service Unavailable without a database.
    pub fn db(&self) -> Result<&ConnectionManager, Error> {
        self.db
            .as_deref()
            .ok_or_else(|| Error::new(StatusCode::SERVICE_UNAVAILABLE, "no database configured"))
    }

    /// The signed cookie that keeps this client's reads on the primary for the sticky window
    /// (it holds the time it runs out, in ms since the epoch), or `None` when stickiness is
    /// off. Signed, so that a client cannot pin its reads to the primary by writing one.
    pub fn sticky_cookie(&self) -> Option<Cookie<'static>> {
        if self.sticky_window.is_zero() {
            return None;
        }
        let until = now_ms() + self.sticky_window.as_millis() as u64;
        let max_age = cookie::time::Duration::seconds(self.sticky_window.as_secs().max(1) as i64);
        Some(
            Cookie::build((STICKY_COOKIE, until.to_string()))
                .max_age(max_age)
                .build(),
        )
    }
}

/// The routing scope of `req`: sticky to the primary while the client's signed sticky cookie
/// says it wrote less than `sticky_window` ago.
///
/// # Errors
/// 503 without a database.
pub fn db_routing<'a>(ctx: &'a Ctx<AppState>, req: &Request) -> Result<Routing<'a>, Error> {
    let state = ctx.state();
    let db = state.db()?;
    let sticky = !state.sticky_window.is_zero()
        && ctx
            .signed_cookie(req, STICKY_COOKIE)
            .is_some_and(|c| is_sticky(Some(c.value()), state.sticky_window, now_ms()));
    Ok(db.routing(sticky))
}

/// How far ahead of this instance's clock another instance's may run (NTP keeps them within
/// milliseconds) for its sticky cookies to be honoured here: right after a write, the redirect
/// may well land on another instance.
pub const CLOCK_SKEW_MS: u64 = 1_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether a sticky cookie's (verified) value is an expiry that has not passed at `now` (ms since
/// the epoch).
/// The cookie holds its own expiry, so a client that keeps cookies too long is not stuck on the
/// primary; an expiry further ahead than `window` was never set by us (we set `now + window`)
/// and is ignored. [`CLOCK_SKEW_MS`] of slack let a cookie set by another instance, whose clock
/// runs a little ahead, count.
pub fn is_sticky(value: Option<&str>, window: Duration, now: u64) -> bool {
    let Some(value) = value else {
        return false;
    };
    if window.is_zero() {
        return false;
    }
    let latest = now.saturating_add(window.as_millis() as u64 + CLOCK_SKEW_MS);
    value
        .parse::<u64>()
        .is_ok_and(|until| until > now && until <= latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_cookie_within_the_window_is_sticky() {
        let window = Duration::from_secs(5);
        let now = 1_700_000_000_000;
        let sticky = |value: String| is_sticky(Some(&value), window, now);
        assert!(sticky((now + 4_000).to_string()));
        assert!(sticky((now + 5_000).to_string()));
        assert!(
            sticky((now + 5_000 + CLOCK_SKEW_MS).to_string()),
            "set by an instance whose clock runs ahead"
        );
        assert!(!sticky((now - 1).to_string()), "expired");
        assert!(
            !sticky((now + 5_001 + CLOCK_SKEW_MS).to_string()),
            "further ahead than any instance sets"
        );
        assert!(!sticky("99999999999999".to_string()), "far future");
        assert!(!sticky("soon".to_string()));
        assert!(!is_sticky(None, window, now));
        let soon = (now + 1).to_string();
        assert!(is_sticky(Some(&soon), window, now));
        assert!(
            !is_sticky(Some(&soon), Duration::ZERO, now),
            "stickiness off"
        );
    }
}
