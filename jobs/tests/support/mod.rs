//! What the job tests share: a process's worth of workers on a database.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use pinion_jobs::{
    Metrics, QueueConfig, Registry, RetryPolicy, Runner, Wakeups, WorkerConfig, Workers,
};
use pinion_orm::listener::{listen_all, Listener};
use pinion_orm::{ConnectOptions, DbConfig};
use pinion_server::ShutdownTrigger;

/// A process's worth of workers: its runner and its listening connection.
pub struct Workers1 {
    runner: Option<Runner>,
    trigger: ShutdownTrigger,
    _listener: Option<Listener>,
}

impl Workers1 {
    pub fn start(url: &str, registry: Registry) -> Workers1 {
        Workers1::start_with(url, registry, true, "default:8")
    }

    /// With or without the listening connection (without: polling alone wakes the workers),
    /// running `queues`.
    pub fn start_with(url: &str, registry: Registry, listening: bool, queues: &str) -> Workers1 {
        let wakeups = Wakeups::new();
        let listener = listening.then(|| {
            listen_all(url, ConnectOptions::default(), vec![wakeups.subscriber()])
                .expect("listener")
        });
        let trigger = ShutdownTrigger::detached();
        let runner = Runner::start(Workers {
            db: DbConfig::new(url.to_string(), vec![]),
            registry: Arc::new(registry),
            config: WorkerConfig {
                queues: QueueConfig::parse_list(queues).expect("queues"),
                lease: Duration::from_secs(3),
                poll_interval: Duration::from_millis(200),
                drain_timeout: Duration::from_secs(2),
                retry: RetryPolicy {
                    base: Duration::from_millis(20),
                    cap: Duration::from_millis(100),
                },
                threads: 2,
                ..WorkerConfig::default()
            },
            metrics: Metrics::unregistered(),
            wakeups,
            shutdown: trigger.clone(),
        })
        .expect("runner");
        Workers1 {
            runner: Some(runner),
            trigger,
            _listener: listener,
        }
    }

    pub fn stop(&mut self) {
        self.trigger.shutdown();
        if let Some(r) = self.runner.take() {
            r.join();
        }
    }
}

impl Drop for Workers1 {
    fn drop(&mut self) {
        self.stop();
    }
}
