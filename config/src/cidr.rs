//! [`Cidr`]: an IP network, for `trusted_proxies`.
//!
//! Hand-written (about thirty lines) rather than taken from `ipnet` or `cidr`: the config crate
//! needs parsing, printing and `contains`, and a dependency for that is more to audit than the
//! code.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 network: an address and a prefix length (`10.0.0.0/8`, `::1/128`).
///
/// Always valid: the prefix is at most 32 (IPv4) or 128 (IPv6), and the address has no bits
/// set beyond the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network `addr/prefix`, or `None` if the prefix is longer than the address (32 bits
    /// for IPv4, 128 for IPv6) or `addr` has bits set beyond the prefix (`10.0.0.1/8`).
    pub const fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let fits = match addr {
            IpAddr::V4(v4) => prefix <= 32 && v4.to_bits() & !mask_v4(prefix) == 0,
            IpAddr::V6(v6) => prefix <= 128 && v6.to_bits() & !mask_v6(prefix) == 0,
        };
        if fits {
            Some(Cidr { addr, prefix })
        } else {
            None
        }
    }

    /// The network's address: its first address, host bits zero.
    pub const fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub const fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the network.
    ///
    /// An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a peer looks like on a socket
    /// bound to `::`) is compared as the IPv4 address it maps; otherwise an IPv4 address is
    /// never in an IPv6 network nor the reverse.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                ip.to_bits() & mask_v4(self.prefix) == net.to_bits()
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                ip.to_bits() & mask_v6(self.prefix) == net.to_bits()
            }
            _ => false,
        }
    }

    /// Parses `addr/prefix`, or a bare address as a single host (`/32`, `/128`).
    pub(crate) fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            "must be an IP network such as 10.0.0.0/8 or ::1/128, or an IP address".to_string()
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "has a prefix length `{p}`; it must be in 0..={max}"
                    ))
                }
            },
        };
        Cidr::new(addr, prefix).ok_or_else(|| {
            let network = Cidr::masked(addr, prefix);
            format!("has host bits set beyond /{prefix}; did you mean {network}?")
        })
    }

    /// `addr/prefix` with the host bits cleared; `prefix` must be valid for `addr`.
    fn masked(addr: IpAddr, prefix: u8) -> Cidr {
        let addr = match addr {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from_bits(v4.to_bits() & mask_v4(prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & mask_v6(prefix))),
        };
        Cidr { addr, prefix }
    }
}

/// The network mask of an IPv4 prefix (`/8` is `0xff00_0000`; `/0` is 0).
const fn mask_v4(prefix: u8) -> u32 {
    match u32::MAX.checked_shl(32u32.saturating_sub(prefix as u32)) {
        Some(mask) => mask,
        None => 0,
    }
}

/// The network mask of an IPv6 prefix.
const fn mask_v6(prefix: u8) -> u128 {
    match u128::MAX.checked_shl(128u32.saturating_sub(prefix as u32)) {
        Some(mask) => mask,
        None => 0,
    }
}

impl fmt::Display for Cidr {
    /// `addr/prefix`, always with the prefix (`127.0.0.1/32`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn parses_networks_and_hosts() {
        for (text, shown) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            (" 127.0.0.1 ", "127.0.0.1/32"),
            ("::1", "::1/128"),
            ("fd00::/8", "fd00::/8"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::/0", "::/0"),
            ("192.168.1.7/32", "192.168.1.7/32"),
        ] {
            let cidr = Cidr::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(cidr.to_string(), shown);
            assert_eq!(Cidr::parse(shown), Ok(cidr));
        }
    }

    #[test]
    fn rejects() {
        for (text, reason) in [
            ("", "must be an IP network"),
            ("localhost", "must be an IP network"),
            ("10.0.0.0/", "prefix length ``"),
            ("10.0.0.0/33", "must be in 0..=32"),
            ("::/129", "must be in 0..=128"),
            ("10.0.0.0/+8", "prefix length `+8`"),
            ("10.0.0.0/8/8", "prefix length `8/8`"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("[::1]/128", "must be an IP network"),
        ] {
            let err = Cidr::parse(text).expect_err(text);
            assert!(err.contains(reason), "{text}: {err}");
        }
        assert_eq!(Cidr::new(ip("10.0.0.1"), 8), None);
        assert_eq!(Cidr::new(ip("10.0.0.0"), 33), None);
        assert!(Cidr::new(ip("::"), 128).is_some());
    }

    #[test]
    fn contains() {
        let net = |text| Cidr::parse(text).expect("cidr");
        assert!(net("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.0")));
        assert!(net("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(net("127.0.0.1/32").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1/32").contains(ip("127.0.0.2")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(net("::1/128").contains(ip("::1")));
        assert!(!net("::1/128").contains(ip("127.0.0.1")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!net("2001:db8::/32").contains(ip("2001:db9::1")));
        // A mapped address is an IPv4 peer: only IPv4 networks hold it.
        assert!(!net("::/0").contains(ip("::ffff:1.2.3.4")));
    }
}
