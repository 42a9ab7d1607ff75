//! Server-Sent Events: a `text/event-stream` response fed by a stream of [`Event`]s.
//!
//! ```
//! use std::time::Duration;
//!
//! use pinion_server::sse::{self, Event, LastEventId, Sse};
//!
//! async fn ticks(last: Option<LastEventId>) -> Sse {
//!     // A browser that reconnects says where it was.
//!     let mut n: u64 = last.and_then(|id| id.0.parse().ok()).unwrap_or(0);
//!     let (mut tx, events) = sse::channel(8);
//!     monoio::spawn(async move {
//!         loop {
//!             n += 1;
//!             let event = Event::new().event("tick").id(n.to_string()).data(n.to_string());
//!             if tx.send(event).await.is_err() {
//!                 return; // the client left
//!             }
//!             monoio::time::sleep(Duration::from_secs(1)).await;
//!         }
//!     });
//!     Sse::new(events)
//! }
//! ```
//!
//! The response carries `Cache-Control: no-cache` and `X-Accel-Buffering: no` (so nginx
//! passes events on at once), starts with an empty comment (so that a proxy forwards the head
//! at once), and a keep-alive comment after `sse_keepalive` (default 15 s) of
//! silence, which also finds clients that left. When the server shuts down, event streams end
//! cleanly, so that browsers reconnect (to another instance) at once; `Event::retry` tells them
//! how long to wait. With htmx: `<div hx-ext="sse" sse-connect="/ticks" sse-swap="tick">`.
//!
//! Streams are [streamed responses](crate::stream): backpressure, disconnects, metrics and
//! pipelining work the same way.

mod broadcast;
mod event;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::{Stream, StreamExt};
use http::header::{HeaderName, HeaderValue, CACHE_CONTROL};

pub use broadcast::Broadcast;
pub use event::Event;

use crate::context::Ctx;
use crate::extract::{FromRequest, Rejection};
use crate::h1::{Request, Response};
use crate::response::IntoResponse;
use crate::stream::{Disconnected, Kind, Streaming};

/// A Server-Sent Events response: return it from a handler.
pub struct Sse {
    /// The events, already rendered.
    events: Pin<Box<dyn Stream<Item = Bytes>>>,
    keep_alive: Option<Duration>,
}

impl Sse {
    /// An event stream sending each of `events` as it comes; it ends when `events` does.
    pub fn new(events: impl Stream<Item = Event> + 'static) -> Sse {
        Sse::rendered(events.map(|e| e.to_bytes()))
    }

    /// A stream of events rendered once for many clients ([`Broadcast`], `pinion-events`):
    /// each item is one or more whole events as [`Event::to_bytes`] renders them, shared
    /// (`Bytes` clones are a reference count) rather than rendered again per client.
    pub fn rendered(events: impl Stream<Item = Bytes> + 'static) -> Sse {
        // An empty comment first: a proxy that sends the response head only with body bytes
        // (nginx over HTTP/2) would otherwise leave the browser "connecting" until the first
        // event or keep-alive.
        let opening = futures_util::stream::once(std::future::ready(Bytes::from_static(b":\n\n")));
        Sse {
            events: Box::pin(opening.chain(events)),
            keep_alive: None,
        }
    }

    /// Sends the keep-alive comment after `after` of silence, instead of `sse_keepalive`.
    pub fn keep_alive(mut self, after: Duration) -> Sse {
        self.keep_alive = Some(after);
        self
    }
}

impl std::fmt::Debug for Sse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sse")
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

impl IntoResponse for Sse {
    fn into_response(self) -> Response {
        let chunks = self.events.map(Ok::<_, Infallible>);
        let kind = Kind::Events {
            keep_alive: self.keep_alive,
        };
        Response::streaming(
            HeaderValue::from_static("text/event-stream"),
            Streaming::new(chunks, kind),
        )
        .header(CACHE_CONTROL, HeaderValue::from_static("no-cache"))
        .header(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        )
    }
}

/// A bounded channel of events: the [`EventSender`] is fed by a task, the [`Events`] go into
/// [`Sse::new`]. `capacity` events may wait; past that, `send` waits for the client.
pub fn channel(capacity: usize) -> (EventSender, Events) {
    let (tx, rx) = mpsc::channel(capacity.max(1) - 1);
    (EventSender { tx }, Events { rx })
}

/// The producing half of an event [`channel`].
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: mpsc::Sender<Event>,
}

impl EventSender {
    /// Sends one event, waiting while the channel is full.
    ///
    /// # Errors
    /// [`Disconnected`] once the stream is over: the client left, or the server is shutting
    /// down.
    pub async fn send(&mut self, event: Event) -> Result<(), Disconnected> {
        futures_util::future::poll_fn(|cx| self.tx.poll_ready(cx))
            .await
            .map_err(|_| Disconnected)?;
        self.tx.start_send(event).map_err(|_| Disconnected)
    }

    /// Sends `event` if there is room now; an event for a slow client is dropped rather than
    /// waited for (a fan-out of live updates should not stall on one reader).
    ///
    /// # Errors
    /// [`Disconnected`] once the stream is over; `Ok(false)` when the event was dropped.
    pub fn try_send(&mut self, event: Event) -> Result<bool, Disconnected> {
        match self.tx.try_send(event) {
            Ok(()) => Ok(true),
            Err(e) if e.is_full() => Ok(false),
            Err(_) => Err(Disconnected),
        }
    }

    /// Whether the stream is over.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The receiving half of an event [`channel`].
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_next_unpin(cx)
    }
}

/// The `Last-Event-ID` a reconnecting browser sends: the id of the last event it received.
/// Take it as `Option<LastEventId>`; a first connection has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEventId(pub String);

impl<S> FromRequest<S> for LastEventId {
    fn from_request(req: &Request, _ctx: &Ctx<S>) -> Result<Self, Rejection> {
        match req.header_str("last-event-id") {
            Some(id) => Ok(LastEventId(id.to_owned())),
            None => Err(Rejection::bad_request("no Last-Event-ID header")),
        }
    }
}
