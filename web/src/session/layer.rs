//! [`Sessions`] (the process's session settings and store) and [`SessionLayer`] (one per
//! worker): load the session before the handler, refuse forged unsafe requests, save what
//! changed after it and send the cookie.

use std::cell::{Cell, OnceCell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use pinion_orm::ConnectionManager;
use pinion_server::cookie::{time, Cookie, CookieJar};
use pinion_server::extract::FromRequest;
use pinion_server::{
    header, Ctx, HandlerFuture, HeaderValue, IntoResponse, Layer, Next, Request, Response,
    StatusCode,
};

use super::handle::{Session, State};
use super::id::SessionId;
use super::record::Timeouts;
use super::store::Store;
use crate::csrf::{self, CsrfKeys};
use crate::Error;

/// The cookie's name over plain HTTP.
pub const COOKIE: &str = "pinion_session";

/// The cookie's name over HTTPS: the `__Host-` prefix makes browsers refuse it unless it is
/// `Secure`, has `Path=/` and no `Domain`, so a sibling subdomain cannot plant one.
pub const HOST_COOKIE: &str = "__Host-pinion_session";

/// How often worker 0 deletes expired rows.
const PURGE_EVERY: Duration = Duration::from_secs(300);

/// The clock sessions are timed by: seconds since the Unix epoch.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The process's sessions: timeouts, the L1, the CSRF rules. Made once at start-up and
/// handed to each worker's [`SessionLayer`].
#[derive(Clone)]
pub struct Sessions {
    store: Arc<Store>,
    clock: Clock,
    trusted_origins: Arc<[String]>,
    csrf_exempt: Arc<[String]>,
}

impl Sessions {
    /// Sessions that end after `idle` without a request or `absolute` after they began
    /// (the `session_idle_timeout` and `session_absolute_timeout` settings), with an L1 of
    /// up to 10 000 sessions.
    pub fn new(idle: Duration, absolute: Duration) -> Sessions {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX).max(1);
        let timeouts = Timeouts {
            idle: secs(idle),
            absolute: secs(absolute),
        };
        Sessions {
            store: Store::new(timeouts, 10_000),
            clock: Arc::new(system_clock),
            trusted_origins: Arc::from([]),
            csrf_exempt: Arc::from([]),
        }
    }

    /// Sessions under the timeouts of `settings`.
    pub fn from_settings(settings: &pinion_config::Settings) -> Sessions {
        Sessions::new(
            settings.session_idle_timeout,
            settings.session_absolute_timeout,
        )
        .trusted_origins(
            settings
                .cors_allowed_origins
                .iter()
                .filter(|o| *o != "*")
                .cloned(),
        )
    }

    /// Times sessions by `clock` (seconds since the epoch) instead of the system's, for tests
    /// of the timeouts.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Sessions {
        self.clock = Arc::new(clock);
        self
    }

    /// Origins besides this site's own whose unsafe requests are accepted (with a valid
    /// token still): another front end of the same application. `from_settings` takes
    /// `cors_allowed_origins`.
    pub fn trusted_origins(mut self, origins: impl IntoIterator<Item = String>) -> Sessions {
        self.trusted_origins = origins.into_iter().collect();
        self
    }

    /// Paths under `prefix` skip the CSRF checks: JSON APIs that authenticate each request
    /// otherwise (a bearer token), never routes that act on the session's behalf.
    pub fn csrf_exempt(mut self, prefix: &str) -> Sessions {
        let mut all: Vec<String> = self.csrf_exempt.iter().cloned().collect();
        all.push(prefix.to_string());
        self.csrf_exempt = all.into();
        self
    }

    /// The L1's counters (hits are session loads that read no row), for metrics and tests.
    pub fn l1_stats(&self) -> pinion_cache::LocMemStats {
        self.store.l1_stats()
    }

    /// Deletes every session of `user_id` on every instance (after a password change, or
    /// "log out everywhere"); how many there were.
    ///
    /// # Errors
    /// The database's.
    pub async fn logout_user(
        &self,
        db: &Rc<ConnectionManager>,
        user_id: i64,
    ) -> crate::Result<u64> {
        self.store.delete_user(db, user_id).await
    }

    /// Deletes the sessions that have expired; how many. Worker 0 of every process runs it
    /// every five minutes by itself; call it for a purge on demand.
    ///
    /// # Errors
    /// The database's.
    pub async fn purge(&self, db: &Rc<ConnectionManager>) -> crate::Result<u64> {
        self.store.purge(db, (self.clock)()).await
    }
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("timeouts", &self.store.timeouts)
            .field("trusted_origins", &self.trusted_origins)
            .field("csrf_exempt", &self.csrf_exempt)
            .finish_non_exhaustive()
    }
}

/// The layer that gives the routes it wraps their [`Session`] and their CSRF protection:
///
/// 1. The session is loaded from the signed cookie (`pinion_session`; `__Host-pinion_session`
///    over HTTPS): from the L1, else from its row. A missing, tampered, unknown or expired
///    cookie gives an empty anonymous session.
/// 2. An unsafe method (POST, PUT, PATCH, DELETE) is refused with 403 when the browser says
///    it came from another site (`Sec-Fetch-Site: cross-site`), when `Origin` is foreign,
///    or when it carries no token of this session (`X-CSRF-Token`, or the form's
///    `csrf_token`), unless its path is [exempt](Sessions::csrf_exempt).
/// 3. After the handler, what changed is written (one statement) and the cookie sent
///    (`HttpOnly`, `SameSite=Lax`, `Path=/`, signed, `Secure` over HTTPS); a logout deletes
///    the row and the cookie. A response without `Cache-Control` gets `private, no-store`
///    when it has a session, else `no-cache`.
pub struct SessionLayer {
    sessions: Sessions,
    db: Rc<ConnectionManager>,
    csrf: OnceCell<Rc<CsrfKeys>>,
    purging: Cell<bool>,
}

impl SessionLayer {
    /// The layer of one worker, over its connection manager.
    pub fn new(sessions: &Sessions, db: Rc<ConnectionManager>) -> SessionLayer {
        SessionLayer {
            sessions: sessions.clone(),
            db,
            csrf: OnceCell::new(),
            purging: Cell::new(false),
        }
    }

    fn csrf_keys<S>(&self, ctx: &Ctx<S>) -> Rc<CsrfKeys> {
        Rc::clone(
            self.csrf
                .get_or_init(|| Rc::new(CsrfKeys::new(ctx.derived_keys("csrf token")))),
        )
    }

    /// Starts worker 0's purge of expired rows, once.
    fn start_purge<S>(&self, ctx: &Ctx<S>) {
        if ctx.worker() != 0 || self.purging.replace(true) {
            return;
        }
        let (sessions, db) = (self.sessions.clone(), Rc::clone(&self.db));
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(PURGE_EVERY).await;
                match sessions.purge(&db).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(sessions = n, "expired sessions purged"),
                    Err(e) => tracing::warn!(error = %e, "expired sessions could not be purged"),
                }
            }
        });
    }

    /// The request's session state, loaded. `cookie` is the session cookie verified, `sent`
    /// whether the request had one at all (a bad one is then removed).
    async fn load(
        &self,
        cookie: Option<Cookie<'static>>,
        sent: bool,
        csrf: Rc<CsrfKeys>,
    ) -> crate::Result<(State, bool)> {
        let now = (self.sessions.clock)();
        let mut state = State::anonymous(now, csrf);
        let Some(cookie) = cookie else {
            // Absent, or changed by someone without the key: removed if it was there.
            return Ok((state, sent));
        };
        let Some(id) = SessionId::parse(cookie.value()) else {
            return Ok((state, true));
        };
        let key = id.key();
        match self.sessions.store.load(&self.db, &key, now).await? {
            Some(record) => {
                state.id = Some(id);
                state.stored = Some(key);
                state.record = record;
                Ok((state, false))
            }
            // Expired, logged out, or purged: the cookie goes.
            None => Ok((state, true)),
        }
    }

    /// Writes what the handler changed.
    async fn save(&self, state: &mut State) -> crate::Result<()> {
        let store = &self.sessions.store;
        if let Some(gone) = state.destroy.take() {
            store.delete(&self.db, &gone).await?;
        }
        let Some(id) = &state.id else {
            return Ok(());
        };
        let key = id.key();
        if state.dirty || state.new_id {
            state.record.seen = state.now;
            let previous = state.stored.filter(|k| *k != key);
            store
                .save(&self.db, &key, previous.as_ref(), &state.record)
                .await?;
        } else if state.stored.is_some() && store.timeouts.touch_due(&state.record, state.now) {
            state.record.seen = state.now;
            store.touch(&self.db, &key, &state.record).await?;
        }
        Ok(())
    }

    fn refuse(req: &Request, why: csrf::Refusal) -> Response {
        tracing::info!(
            path = req.path(),
            reason = why.reason(),
            "unsafe request refused (CSRF)"
        );
        pinion_server::extract::Rejection::new(
            StatusCode::FORBIDDEN,
            "This form has expired or was sent from another site. Reload the page and try again.",
        )
        .into_response_for(req)
    }
}

impl<S: 'static> Layer<S> for SessionLayer {
    fn call<'a>(
        &'a self,
        mut req: Request,
        ctx: &'a Ctx<S>,
        next: Next<'a, S>,
    ) -> HandlerFuture<'a> {
        Box::pin(async move {
            self.start_purge(ctx);
            let https = ctx.is_https(&req);
            let name = if https { HOST_COOKIE } else { COOKIE };
            // No jar on the way in: most requests only read their session.
            let sent = sent_cookie(&req, name);
            let cookie = if sent {
                ctx.signed_cookie(&req, name)
            } else {
                None
            };
            let (state, stale_cookie) = match self.load(cookie, sent, self.csrf_keys(ctx)).await {
                Ok(loaded) => loaded,
                Err(e) => return Ok(e.into_response()),
            };
            let checked = csrf::is_unsafe(req.method())
                && !self
                    .sessions
                    .csrf_exempt
                    .iter()
                    .any(|p| req.path().starts_with(p.as_str()));
            if checked {
                if let Err(why) = csrf::check_origin(&req, https, &self.sessions.trusted_origins) {
                    return Ok(SessionLayer::refuse(&req, why));
                }
                let verdict = match (csrf::token_of(&req), &state.id) {
                    (None, _) => Err(csrf::Refusal::MissingToken),
                    (Some(token), Some(id)) if state.csrf.verify(id, &token) => Ok(()),
                    (Some(_), _) => Err(csrf::Refusal::WrongToken),
                };
                if let Err(why) = verdict {
                    return Ok(SessionLayer::refuse(&req, why));
                }
            }
            let had_session = state.id.is_some();
            let session = Session(Rc::new(RefCell::new(state)));
            req.extensions_mut().insert(session.clone());
            let mut resp = next.run(req, ctx).await?;

            // Taken out: a clone the handler kept (in a streamed body) sees an empty session.
            let blank = State::anonymous(0, Rc::clone(&session.0.borrow().csrf));
            let mut state = session.0.replace(blank);
            if let Err(e) = self.save(&mut state).await {
                return Ok(e.into_response());
            }
            let mut cookies = false;
            let mut jar = CookieJar::for_response(ctx, https);
            if state.new_id {
                if let Some(id) = &state.id {
                    // The browser may drop it when the absolute timeout ends it anyway.
                    let timeouts = self.sessions.store.timeouts;
                    let left = state.record.created + timeouts.absolute - state.now;
                    jar.signed().add(
                        Cookie::build((name, id.encode())).max_age(time::Duration::seconds(left)),
                    );
                    cookies = true;
                }
            } else if state.id.is_none() && (had_session || stale_cookie) {
                jar.expire(name);
                cookies = true;
            }
            if resp.header_value(&header::CACHE_CONTROL).is_none() {
                // A page of a session is nobody else's; any other is checked again each time
                // (a handler that knows better, a public fragment, says so itself).
                let policy = if had_session || state.id.is_some() {
                    "private, no-store"
                } else {
                    "no-cache"
                };
                resp.insert_header(header::CACHE_CONTROL, HeaderValue::from_static(policy));
            }
            Ok(if cookies {
                (jar, resp).into_response()
            } else {
                resp
            })
        })
    }
}

/// Whether `req` carries a cookie called `name`, valid or not (names only: no value is
/// decoded).
fn sent_cookie(req: &Request, name: &str) -> bool {
    req.header_all("cookie").any(|line| {
        line.split(|&b| b == b';').any(|pair| {
            let pair = pair.trim_ascii_start();
            pair.strip_prefix(name.as_bytes())
                .is_some_and(|rest| rest.trim_ascii_start().first() == Some(&b'='))
        })
    })
}

impl<S> FromRequest<S> for Session {
    fn from_request(
        req: &Request,
        _ctx: &Ctx<S>,
    ) -> Result<Session, pinion_server::extract::Rejection> {
        req.extensions().get::<Session>().cloned().ok_or_else(|| {
            tracing::error!(
                path = req.path(),
                "a handler takes a Session but no SessionLayer wraps its route"
            );
            pinion_server::extract::Rejection::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal server error",
            )
        })
    }
}

impl From<Error> for pinion_server::extract::Rejection {
    fn from(e: Error) -> pinion_server::extract::Rejection {
        pinion_server::extract::Rejection::new(e.status(), e.detail().to_string())
    }
}
