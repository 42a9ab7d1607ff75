//! Typed settings for pinion (stub; being replaced by the full loader).
#![allow(missing_docs)]
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver { Auto, IoUring, Epoll }

#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: IpAddr,
    pub port: u16,
    pub threads: Option<usize>,
    pub io_driver: IoDriver,
    pub backlog: u32,
    pub max_connections_per_thread: usize,
    pub max_head_size: usize,
    pub max_headers: usize,
    pub max_uri_length: usize,
    pub max_body_size: u64,
    pub max_drain_size: u64,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub drain_timeout: Duration,
    pub server_name: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: 8080,
            threads: None,
            io_driver: IoDriver::Auto,
            backlog: 4096,
            max_connections_per_thread: 16384,
            max_head_size: 64 * 1024,
            max_headers: 100,
            max_uri_length: 8 * 1024,
            max_body_size: 10 * 1024 * 1024,
            max_drain_size: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(75),
            drain_timeout: Duration::from_secs(30),
            server_name: "pinion".to_string(),
        }
    }
}
