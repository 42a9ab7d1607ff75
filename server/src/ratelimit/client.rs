//! Who a request counts against: the peer, the client a trusted proxy names in
//! `X-Forwarded-For`, or a key the application derives (a user id).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use super::error::InvalidConfig;
use crate::h1::Request;

/// The identity a request is limited under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A client address (IPv4-mapped IPv6 addresses are folded to IPv4). Shown as `ip:<addr>`.
    Ip(IpAddr),
    /// The network of an IPv6 client, cut to the extractor's prefix
    /// ([`KeyExtractor::with_ipv6_prefix`]): one client holds a whole /64, and every address
    /// of it must share one limit. Shown as `net:<network>/<prefix>`.
    Net(IpNet),
    /// A key the application supplied, such as a user id. Shown as `app:<key>`.
    App(String),
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::Ip(ip) => write!(f, "ip:{ip}"),
            ClientKey::Net(net) => write!(f, "net:{net}"),
            ClientKey::App(key) => write!(f, "app:{key}"),
        }
    }
}

/// The application's own key for a request; `None` falls back to the client address.
pub type AppKeyFn = dyn Fn(&Request) -> Option<String> + Send + Sync;

/// Turns requests into [`ClientKey`]s: the application's key when it gives one, otherwise the
/// client address from [`client_ip`] (an IPv6 one cut to its network). Built once from
/// configuration; `Send + Sync`, cheap to clone.
#[derive(Clone)]
pub struct KeyExtractor {
    trusted: Arc<[IpNet]>,
    app: Option<Arc<AppKeyFn>>,
    ipv6_prefix: u8,
}

impl Default for KeyExtractor {
    fn default() -> KeyExtractor {
        KeyExtractor::new([])
    }
}

impl KeyExtractor {
    /// Keys by client address, believing `X-Forwarded-For` only from peers in `trusted`
    /// ([`parse_trusted_proxies`], or `pinion_config::Cidr`s mapped through
    /// `IpNet::new(c.addr(), c.prefix())`).
    pub fn new(trusted: impl IntoIterator<Item = IpNet>) -> KeyExtractor {
        KeyExtractor {
            trusted: trusted.into_iter().collect(),
            app: None,
            ipv6_prefix: pinion_config::DEFAULT_RATE_LIMIT_IPV6_PREFIX,
        }
    }

    /// Keys IPv6 clients by their first `prefix` bits (clamped to 128; 128 keys each address
    /// alone). IPv4 clients keep their full address: one IPv4 address is what a subscriber
    /// gets, and a NAT shares it anyway. Default is
    /// [`pinion_config::DEFAULT_RATE_LIMIT_IPV6_PREFIX`] (a /64).
    pub fn with_ipv6_prefix(mut self, prefix: u8) -> KeyExtractor {
        self.ipv6_prefix = prefix.min(128);
        self
    }

    /// Asks `key` first; requests it returns `None` for are keyed by address.
    pub fn with_app_key(
        mut self,
        key: impl Fn(&Request) -> Option<String> + Send + Sync + 'static,
    ) -> KeyExtractor {
        self.app = Some(Arc::new(key));
        self
    }

    /// The trusted proxy networks.
    pub fn trusted(&self) -> &[IpNet] {
        &self.trusted
    }

    /// The key `req` is limited under.
    pub fn key(&self, req: &Request) -> ClientKey {
        if let Some(key) = self.app.as_ref().and_then(|f| f(req)) {
            return ClientKey::App(key);
        }
        self.address_key(client_ip(req, &self.trusted))
    }

    /// The key of a client address: itself for IPv4, its network for IPv6.
    pub fn address_key(&self, ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V6(v6) if self.ipv6_prefix < 128 => {
                // `new` cannot fail: the prefix is at most 128.
                match ipnet::Ipv6Net::new(v6, self.ipv6_prefix) {
                    Ok(net) => ClientKey::Net(IpNet::V6(net.trunc())),
                    Err(_) => ClientKey::Ip(ip),
                }
            }
            _ => ClientKey::Ip(ip),
        }
    }
}

impl fmt::Debug for KeyExtractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyExtractor")
            .field("trusted", &self.trusted)
            .field("app", &self.app.is_some())
            .field("ipv6_prefix", &self.ipv6_prefix)
            .finish()
    }
}

/// The client address of `req`: the peer's, unless the peer is a trusted proxy, in which case
/// the one `X-Forwarded-For` names. See [`client_ip_from`].
pub fn client_ip(req: &Request, trusted: &[IpNet]) -> IpAddr {
    client_ip_from(
        req.peer_addr().ip(),
        req.header_all("x-forwarded-for"),
        trusted,
    )
}

/// The client address behind `peer`, given the `X-Forwarded-For` field lines in arrival order.
///
/// A peer outside `trusted` is the client, whatever it forwarded. From a trusted peer, the
/// list (all lines joined by commas) is read from the right: each trusted proxy appended the
/// address it received from, so the first address that is not a trusted proxy is the client,
/// and what stands left of it is whatever the client sent, unverifiable. An entry that is not
/// an address (`unknown`, an obfuscated name, junk) before the client is reached means the
/// chain cannot be followed: the peer is the answer. When every entry is a trusted proxy, the
/// leftmost one is. No field at all: the peer.
///
/// Entries may carry a port (`192.0.2.1:4711`, `[2001:db8::1]:443`) or brackets
/// (`[2001:db8::1]`). IPv4-mapped IPv6 addresses count as IPv4, for the peer and the entries
/// alike. Allocates nothing.
pub fn client_ip_from<'a>(
    peer: IpAddr,
    xff: impl IntoIterator<Item = &'a [u8]>,
    trusted: &[IpNet],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    // One pass left to right, keeping what a right-to-left walk would stop at: the rightmost
    // entry that is garbage or untrusted, and the leftmost trusted entry after it.
    let mut stop: Option<Option<IpAddr>> = None;
    let mut first_trusted_after: Option<IpAddr> = None;
    for line in xff {
        for entry in line.split(|&b| b == b',') {
            match parse_entry(entry) {
                Some(ip) if is_trusted(ip, trusted) => {
                    first_trusted_after.get_or_insert(ip);
                }
                parsed => {
                    stop = Some(parsed);
                    first_trusted_after = None;
                }
            }
        }
    }
    match stop {
        Some(Some(client)) => client,
        Some(None) => peer,
        None => first_trusted_after.unwrap_or(peer),
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// One `X-Forwarded-For` entry as an address, or `None` for anything else.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim_matches([' ', '\t']);
    let ip = if let Ok(ip) = text.parse::<IpAddr>() {
        ip
    } else if let Ok(sock) = text.parse::<SocketAddr>() {
        sock.ip()
    } else {
        text.strip_prefix('[')?.strip_suffix(']')?.parse().ok()?
    };
    Some(ip.to_canonical())
}

/// Parses a trusted-proxy list: networks in CIDR notation separated by commas and/or
/// whitespace, `"10.0.0.0/8, 127.0.0.1/32, ::1/128"`. A bare address is one host (`/32` or
/// `/128`). An empty list trusts nobody. Host bits set (`10.0.0.1/8`) are cleared.
///
/// # Errors
/// When an entry is neither a network nor an address; the message names it.
pub fn parse_trusted_proxies(list: &str) -> Result<Vec<IpNet>, InvalidConfig> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    InvalidConfig::new(format!(
                        "trusted proxy {s:?} is neither an address nor a network in CIDR notation"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::h1::head::{self, Limits};

    const LIMITS: Limits = Limits {
        max_head: 8192,
        max_headers: 32,
        max_uri: 1024,
        max_body: 1 << 20,
    };

    fn request(raw: &str, peer: SocketAddr) -> Request {
        let raw = raw.as_bytes();
        let head = head::parse(raw, &LIMITS)
            .expect("valid head")
            .expect("complete head");
        let head_bytes = Bytes::copy_from_slice(&raw[..head.len]);
        Request::new(head, head_bytes, Bytes::new(), peer)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn request_headers_are_read_across_lines() {
        let trusted = parse_trusted_proxies("10.0.0.0/8").expect("list");
        let peer: SocketAddr = "10.0.0.2:5000".parse().expect("addr");
        let req = request(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6, 198.51.100.9\r\n\
             x-forwarded-for: 10.1.1.1\r\n\r\n",
            peer,
        );
        assert_eq!(client_ip(&req, &trusted), ip("198.51.100.9"));
        let keys = KeyExtractor::new(trusted.clone());
        assert_eq!(keys.key(&req), ClientKey::Ip(ip("198.51.100.9")));
        assert_eq!(keys.key(&req).to_string(), "ip:198.51.100.9");

        let keys = keys.with_app_key(|r| r.header_str("x-user").map(str::to_string));
        assert_eq!(keys.key(&req), ClientKey::Ip(ip("198.51.100.9")));
        let req = request("GET / HTTP/1.1\r\nHost: a\r\nX-User: 42\r\n\r\n", peer);
        assert_eq!(keys.key(&req), ClientKey::App("42".into()));
        assert_eq!(keys.key(&req).to_string(), "app:42");
    }

    #[test]
    fn ipv6_clients_share_a_key_per_prefix() {
        let peer: SocketAddr = "[2001:db8:1:2::10]:5000".parse().expect("addr");
        let other: SocketAddr = "[2001:db8:1:2:ffff:ffff:ffff:ffff]:5000"
            .parse()
            .expect("addr");
        let next_net: SocketAddr = "[2001:db8:1:3::10]:5000".parse().expect("addr");
        let get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let keys = KeyExtractor::new([]);
        let key = keys.key(&request(get, peer));
        assert_eq!(key.to_string(), "net:2001:db8:1:2::/64");
        assert_eq!(keys.key(&request(get, other)), key);
        assert_ne!(keys.key(&request(get, next_net)), key);

        let wide = KeyExtractor::new([]).with_ipv6_prefix(48);
        assert_eq!(
            wide.key(&request(get, peer)),
            wide.key(&request(get, next_net))
        );
        assert_eq!(
            wide.key(&request(get, peer)).to_string(),
            "net:2001:db8:1::/48"
        );

        let exact = KeyExtractor::new([]).with_ipv6_prefix(128);
        assert_eq!(exact.key(&request(get, peer)), ClientKey::Ip(peer.ip()));
        assert_ne!(
            exact.key(&request(get, peer)),
            exact.key(&request(get, other))
        );

        // IPv4, and IPv4-mapped IPv6, keep the whole address.
        let v4: SocketAddr = "192.0.2.7:80".parse().expect("addr");
        assert_eq!(keys.key(&request(get, v4)), ClientKey::Ip(ip("192.0.2.7")));
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:80".parse().expect("addr");
        assert_eq!(
            keys.key(&request(get, mapped)),
            ClientKey::Ip(ip("192.0.2.7"))
        );
    }

    #[test]
    fn mapped_peer_is_folded_to_ipv4() {
        let trusted = parse_trusted_proxies("127.0.0.1").expect("list");
        let peer = ip("::ffff:127.0.0.1");
        assert_eq!(
            client_ip_from(peer, [&b"203.0.113.5"[..]], &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(client_ip_from(peer, [], &[]), ip("127.0.0.1"));
    }

    #[test]
    fn entry_forms() {
        for (entry, want) in [
            ("192.0.2.1", Some("192.0.2.1")),
            ("  192.0.2.1\t", Some("192.0.2.1")),
            ("192.0.2.1:4711", Some("192.0.2.1")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
            ("::ffff:192.0.2.1", Some("192.0.2.1")),
            ("unknown", None),
            ("_hidden", None),
            ("", None),
            ("192.0.2.256", None),
            ("fe80::1%eth0", None),
            ("[192.0.2.1", None),
        ] {
            assert_eq!(parse_entry(entry.as_bytes()), want.map(ip), "{entry:?}");
        }
        assert_eq!(parse_entry(b"\xff"), None);
    }
}
