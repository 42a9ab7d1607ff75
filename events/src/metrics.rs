//! The events' metrics for `/metrics`: a prometheus collector to register in the
//! telemetry's registry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge};

use crate::Events;

/// Reports, at each scrape: `pinion_events_published_total` (by this process),
/// `pinion_events_received_total` (from every instance, through the listener),
/// `pinion_events_delivered_total` (handed to a subscriber's queue),
/// `pinion_events_cut_off_total` (subscribers cut off for falling behind),
/// `pinion_events_subscribers` (open now, as of the last delivery or sweep) and
/// `pinion_listener_up` (1 while the process's listening connection is up, 0 while events and
/// the query cache's invalidations wait for it).
pub struct EventsCollector {
    events: Arc<Events>,
    listener: Option<Arc<AtomicBool>>,
    published: IntCounter,
    received: IntCounter,
    delivered: IntCounter,
    cut_off: IntCounter,
    subscribers: IntGauge,
    listener_up: IntGauge,
}

impl std::fmt::Debug for EventsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsCollector").finish_non_exhaustive()
    }
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("the events' metric names are valid")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("the events' metric names are valid")
}

impl EventsCollector {
    /// A collector for `events`, and for the listening connection whose state
    /// [`Listener::state`](pinion_orm::listener::Listener::state) gives.
    ///
    /// # Panics
    /// Never: the metric names are constants (checked by the unit test).
    pub fn new(events: Arc<Events>, listener: Option<Arc<AtomicBool>>) -> EventsCollector {
        EventsCollector {
            events,
            listener,
            published: counter("pinion_events_published_total", "Events this process published."),
            received: counter(
                "pinion_events_received_total",
                "Events this process received through its listening connection, from every instance.",
            ),
            delivered: counter(
                "pinion_events_delivered_total",
                "Events handed to a subscriber's queue.",
            ),
            cut_off: counter(
                "pinion_events_cut_off_total",
                "Subscribers cut off (sent a resync event) for falling behind.",
            ),
            subscribers: gauge("pinion_events_subscribers", "Event subscriptions open."),
            listener_up: gauge(
                "pinion_listener_up",
                "1 while the process's listening connection to the primary is up.",
            ),
        }
    }
}

impl Collector for EventsCollector {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.published.desc(),
            self.received.desc(),
            self.delivered.desc(),
            self.cut_off.desc(),
            self.subscribers.desc(),
            self.listener_up.desc(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let stats = self.events.stats();
        for (c, v) in [
            (&self.published, stats.published),
            (&self.received, stats.received),
            (&self.delivered, stats.delivered),
            (&self.cut_off, stats.cut_off),
        ] {
            c.reset();
            c.inc_by(v);
        }
        self.subscribers.set(stats.subscribers);
        let up = self
            .listener
            .as_ref()
            .map_or(self.events.is_listening(), |s| s.load(Ordering::Acquire));
        self.listener_up.set(i64::from(up));
        [
            self.published.collect(),
            self.received.collect(),
            self.delivered.collect(),
            self.cut_off.collect(),
            self.subscribers.collect(),
            self.listener_up.collect(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
