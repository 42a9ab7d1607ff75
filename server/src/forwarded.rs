//! What a trusted proxy says about a request besides the client's address: whether the client
//! came over HTTPS.

use ipnet::IpNet;

use crate::h1::Request;

/// Whether the client reached us over HTTPS: a trusted proxy (`trusted_proxies`) says so with
/// `X-Forwarded-Proto: https` (nginx: `proxy_set_header X-Forwarded-Proto $scheme`). From any
/// other peer the header is ignored, since anyone can send it; pinion itself speaks plain HTTP,
/// so without a proxy the answer is no.
///
/// With several values (proxies that append), the last one counts: it is the nearest proxy's,
/// the one we trust.
pub(crate) fn is_https(req: &Request, trusted: &[IpNet]) -> bool {
    let peer = req.peer_addr().ip();
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return false;
    }
    req.header_all("x-forwarded-proto")
        .last()
        .and_then(|value| value.rsplit(|&b| b == b',').next())
        .is_some_and(|proto| proto.trim_ascii().eq_ignore_ascii_case(b"https"))
}
