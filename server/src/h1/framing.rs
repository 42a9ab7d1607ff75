//! Request body framing from the request head (RFC 9112 §6).
//!
//! Deciding where a request body ends is the one decision this server must make exactly as every
//! proxy in front of it does; disagreeing is request smuggling. So this module accepts only
//! unambiguous heads: `Transfer-Encoding: chunked` alone, or one `Content-Length` value, and
//! rejects every combination the RFC calls ambiguous instead of picking a winner.
//!
//! Every [`FramingError`] leaves the body length unknown, so the connection layer must send the
//! error response and then close the connection.

use std::fmt;

use super::token::{eq_lower, is_tchar};

/// How the request body is delimited on the wire.
///
/// Requests without framing headers have no body (RFC 9112 §6.3 rule 7), so there is no
/// read-until-close variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body: neither header is present, or `Content-Length: 0`.
    None,
    /// Exactly this many body bytes follow the head (never 0; that is [`BodyFraming::None`]).
    Length(u64),
    /// The body uses the chunked transfer coding; decode it with `ChunkedDecoder`.
    Chunked,
}

/// Why the body framing of a request head was rejected.
///
/// The variants are fine-grained so logs say what the peer did; [`FramingError::status`] gives the
/// response status. All of them require closing the connection after responding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FramingError {
    /// Both `Transfer-Encoding` and `Content-Length` are present (RFC 9112 §6.1: the classic
    /// smuggling vector, rejected rather than letting one header win).
    TeWithCl,
    /// `Transfer-Encoding` on an HTTP/1.0 request, whose framing a 1.0 intermediary may not have
    /// understood (RFC 9112 §6.1).
    TeOnHttp10,
    /// `Transfer-Encoding` is empty or holds something that is not a list of codings.
    InvalidTransferEncoding,
    /// `chunked` is present but not exactly once as the final coding, so the body length cannot
    /// be determined (RFC 9112 §6.3 rule 4: 400).
    MisplacedChunked,
    /// A transfer coding other than `chunked` was applied; we implement none (RFC 9112 §6.1: 501).
    UnsupportedCoding,
    /// A `Content-Length` value is not `1*DIGIT` or does not fit a `u64`.
    InvalidContentLength,
    /// `Content-Length` values (across lines or in a list) differ.
    ConflictingContentLength,
}

impl FramingError {
    /// The response status: 501 for [`FramingError::UnsupportedCoding`], 400 otherwise.
    ///
    /// Kept beside the error so the mapping cannot drift from the variants.
    pub(crate) fn status(&self) -> u16 {
        match self {
            Self::UnsupportedCoding => 501,
            _ => 400,
        }
    }

    /// A short lowercase description, static so the head parser can carry it in its rejection
    /// and put it straight into the response body without formatting.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::TeWithCl => "both transfer-encoding and content-length present",
            Self::TeOnHttp10 => "transfer-encoding on an http/1.0 request",
            Self::InvalidTransferEncoding => "invalid transfer-encoding",
            Self::MisplacedChunked => "chunked is not the single final transfer coding",
            Self::UnsupportedCoding => "unsupported transfer coding",
            Self::InvalidContentLength => "invalid content-length",
            Self::ConflictingContentLength => "conflicting content-length values",
        }
    }
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for FramingError {}

/// Decides how the body of a request is framed.
///
/// `version` is httparse's minor version (0 for HTTP/1.0, 1 for HTTP/1.1) and `headers` the
/// parsed header fields; names are matched case-insensitively. Allocation-free: values are
/// scanned in place.
///
/// # Return
///
/// [`BodyFraming::Chunked`] for `Transfer-Encoding: chunked`, [`BodyFraming::Length`] for a
/// positive `Content-Length`, else [`BodyFraming::None`].
///
/// # Errors
///
/// A [`FramingError`] when the head is ambiguous or uses a coding we do not implement; see the
/// variants for the rules. The connection must be closed after the error response.
pub(crate) fn body_framing(
    version: u8,
    headers: &[httparse::Header<'_>],
) -> Result<BodyFraming, FramingError> {
    let mut has_te = false;
    let mut has_cl = false;
    for header in headers {
        if eq_lower(header.name.as_bytes(), b"transfer-encoding") {
            has_te = true;
        } else if eq_lower(header.name.as_bytes(), b"content-length") {
            has_cl = true;
        }
    }

    if has_te {
        if has_cl {
            return Err(FramingError::TeWithCl);
        }
        if version == 0 {
            return Err(FramingError::TeOnHttp10);
        }
        return transfer_coding(headers);
    }
    if has_cl {
        return content_length(headers).map(|len| match len {
            0 => BodyFraming::None,
            n => BodyFraming::Length(n),
        });
    }
    Ok(BodyFraming::None)
}

/// Checks the combined `Transfer-Encoding` list, which must be exactly `chunked`.
fn transfer_coding(headers: &[httparse::Header<'_>]) -> Result<BodyFraming, FramingError> {
    let mut codings = 0usize;
    let mut chunked = 0usize;
    let mut last_is_chunked = false;
    let te_values = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        .map(|h| h.value);

    // All lines form one comma-separated list (RFC 9110 §5.3); empty elements are ignored.
    for element in te_values.flat_map(|v| v.split(|&b| b == b',')) {
        let element = trim_ows(element);
        if element.is_empty() {
            continue;
        }
        // transfer-coding = token *( OWS ";" OWS transfer-parameter )
        let (name, has_params) = match element.iter().position(|&b| b == b';') {
            Some(i) => (trim_ows(&element[..i]), true),
            None => (element, false),
        };
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(FramingError::InvalidTransferEncoding);
        }
        codings += 1;
        last_is_chunked = name.eq_ignore_ascii_case(b"chunked");
        if last_is_chunked {
            // chunked takes no parameters; one that has them is not the coding we implement.
            if has_params {
                return Err(FramingError::InvalidTransferEncoding);
            }
            chunked += 1;
        }
    }

    if codings == 0 {
        Err(FramingError::InvalidTransferEncoding)
    } else if chunked == 0 {
        Err(FramingError::UnsupportedCoding)
    } else if chunked > 1 || !last_is_chunked {
        Err(FramingError::MisplacedChunked)
    } else if codings > 1 {
        Err(FramingError::UnsupportedCoding)
    } else {
        Ok(BodyFraming::Chunked)
    }
}

/// Reads the `Content-Length`, which may repeat (in lines or a list) only with identical values.
fn content_length(headers: &[httparse::Header<'_>]) -> Result<u64, FramingError> {
    let mut length = None;
    let cl_values = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| h.value);

    for element in cl_values.flat_map(|v| v.split(|&b| b == b',')) {
        let value = parse_digits(trim_ows(element)).ok_or(FramingError::InvalidContentLength)?;
        match length {
            None => length = Some(value),
            Some(seen) if seen == value => {}
            Some(_) => return Err(FramingError::ConflictingContentLength),
        }
    }
    // Callers only get here with at least one Content-Length line, and `split` always yields at
    // least one element, so `length` is set; the fallback keeps this total without a panic.
    length.ok_or(FramingError::InvalidContentLength)
}

/// Parses `1*DIGIT` into a `u64`: no sign, no whitespace, no hex, no overflow.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Strips optional whitespace (SP / HTAB) from both ends, as list elements allow.
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use BodyFraming as F;
    use FramingError as E;

    /// Frames a head given as `(name, value)` pairs.
    fn frame(
        version: u8,
        fields: &[(&'static str, &'static [u8])],
    ) -> Result<BodyFraming, FramingError> {
        let headers: Vec<httparse::Header<'_>> = fields
            .iter()
            .map(|&(name, value)| httparse::Header { name, value })
            .collect();
        body_framing(version, &headers)
    }

    fn te(value: &'static [u8]) -> Result<BodyFraming, FramingError> {
        frame(1, &[("Host", b"x"), ("Transfer-Encoding", value)])
    }

    fn cl(value: &'static [u8]) -> Result<BodyFraming, FramingError> {
        frame(1, &[("Host", b"x"), ("Content-Length", value)])
    }

    #[test]
    fn no_framing_headers_means_no_body() {
        assert_eq!(frame(1, &[]), Ok(F::None));
        assert_eq!(
            frame(0, &[("Host", b"x"), ("Content-Type", b"text/plain")]),
            Ok(F::None)
        );
        // Look-alike names do not count.
        assert_eq!(
            frame(
                1,
                &[("Content-Lengths", b"5"), ("X-Transfer-Encoding", b"gzip")]
            ),
            Ok(F::None)
        );
    }

    #[test]
    fn chunked_alone_is_chunked() {
        for value in [
            &b"chunked"[..],
            b"Chunked",
            b"CHUNKED",
            b" chunked ",
            b"\tchunked",
            b", chunked",
            b"chunked,",
            b" , ,chunked, ",
        ] {
            assert_eq!(
                te(value),
                Ok(F::Chunked),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(
            frame(1, &[("transfer-encoding", b"chunked")]),
            Ok(F::Chunked)
        );
        assert_eq!(
            frame(1, &[("TRANSFER-ENCODING", b"chunked")]),
            Ok(F::Chunked)
        );
    }

    #[test]
    fn te_lines_combine_into_one_list() {
        // An empty line plus chunked is still just chunked.
        assert_eq!(
            frame(
                1,
                &[
                    ("Transfer-Encoding", b""),
                    ("Transfer-Encoding", b"chunked")
                ]
            ),
            Ok(F::Chunked)
        );
        assert_eq!(
            frame(
                1,
                &[
                    ("Transfer-Encoding", b"gzip"),
                    ("Transfer-Encoding", b"chunked")
                ]
            ),
            Err(E::UnsupportedCoding)
        );
        assert_eq!(
            frame(
                1,
                &[
                    ("Transfer-Encoding", b"chunked"),
                    ("Transfer-Encoding", b"gzip")
                ]
            ),
            Err(E::MisplacedChunked)
        );
        assert_eq!(
            frame(
                1,
                &[
                    ("Transfer-Encoding", b"chunked"),
                    ("transfer-encoding", b"chunked")
                ]
            ),
            Err(E::MisplacedChunked)
        );
    }

    #[test]
    fn other_codings_are_not_implemented() {
        for value in [
            &b"gzip, chunked"[..],
            b"identity, chunked",
            b"x-foo,chunked",
            b"gzip;q=1, chunked",
        ] {
            assert_eq!(
                te(value),
                Err(E::UnsupportedCoding),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        for value in [
            &b"gzip"[..],
            b"identity",
            b"x-foo",
            b"gzip, deflate",
            b"chunkedx",
            b"chunk",
        ] {
            assert_eq!(
                te(value),
                Err(E::UnsupportedCoding),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(E::UnsupportedCoding.status(), 501);
    }

    #[test]
    fn chunked_must_be_single_and_final() {
        for value in [
            &b"chunked, gzip"[..],
            b"chunked, chunked",
            b"chunked,chunked",
            b"gzip, chunked, chunked",
            b"chunked, identity",
            b"chunked, gzip, chunked",
        ] {
            assert_eq!(
                te(value),
                Err(E::MisplacedChunked),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(E::MisplacedChunked.status(), 400);
    }

    #[test]
    fn malformed_te_is_bad_request() {
        for value in [
            &b""[..],
            b" ",
            b",",
            b" , ,",
            b"chun ked",
            b"chunked;",
            b"chunked; foo=bar",
            b";chunked",
            b"\"chunked\"",
            b"gzip chunked",
            b"chunked\x00",
        ] {
            assert_eq!(
                te(value),
                Err(E::InvalidTransferEncoding),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(E::InvalidTransferEncoding.status(), 400);
    }

    #[test]
    fn te_with_cl_is_rejected_whatever_the_values() {
        for (te_value, cl_value) in [
            (&b"chunked"[..], &b"5"[..]),
            (b"chunked", b"0"),
            (b"gzip", b"5"),
            (b"chunked", b"garbage"),
            (b"", b""),
        ] {
            let fields = [
                ("Transfer-Encoding", te_value),
                ("Content-Length", cl_value),
            ];
            let headers: Vec<_> = fields
                .iter()
                .map(|&(name, value)| httparse::Header { name, value })
                .collect();
            assert_eq!(body_framing(1, &headers), Err(E::TeWithCl));
            let reversed: Vec<_> = headers.iter().rev().copied().collect();
            assert_eq!(body_framing(1, &reversed), Err(E::TeWithCl));
            assert_eq!(body_framing(0, &headers), Err(E::TeWithCl));
        }
        assert_eq!(E::TeWithCl.status(), 400);
    }

    #[test]
    fn te_on_http10_is_rejected() {
        assert_eq!(
            frame(0, &[("Transfer-Encoding", b"chunked")]),
            Err(E::TeOnHttp10)
        );
        assert_eq!(
            frame(0, &[("Transfer-Encoding", b"gzip")]),
            Err(E::TeOnHttp10)
        );
        assert_eq!(E::TeOnHttp10.status(), 400);
        // Content-Length is fine on 1.0.
        assert_eq!(frame(0, &[("Content-Length", b"5")]), Ok(F::Length(5)));
    }

    #[test]
    fn content_length_values() {
        assert_eq!(cl(b"5"), Ok(F::Length(5)));
        assert_eq!(cl(b"0"), Ok(F::None));
        assert_eq!(cl(b"000"), Ok(F::None));
        assert_eq!(cl(b"007"), Ok(F::Length(7)));
        assert_eq!(cl(b" 5 "), Ok(F::Length(5)));
        assert_eq!(cl(b"\t5\t"), Ok(F::Length(5)));
        assert_eq!(cl(b"18446744073709551615"), Ok(F::Length(u64::MAX)));
        assert_eq!(frame(1, &[("content-length", b"12")]), Ok(F::Length(12)));
        assert_eq!(frame(1, &[("CONTENT-LENGTH", b"12")]), Ok(F::Length(12)));
    }

    #[test]
    fn invalid_content_length_is_rejected() {
        for value in [
            &b""[..],
            b" ",
            b"+5",
            b"-5",
            b"0x5",
            b"5 5",
            b"5.0",
            b"5a",
            b"a",
            b"1e3",
            b"\xd9\xa5", // ARABIC-INDIC DIGIT FIVE
            b"18446744073709551616",
            b"99999999999999999999999",
            b"5,",
            b",5",
            b"5,,5",
            b"5, x",
        ] {
            assert_eq!(
                cl(value),
                Err(E::InvalidContentLength),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(E::InvalidContentLength.status(), 400);
    }

    #[test]
    fn repeated_content_length_must_agree() {
        assert_eq!(cl(b"5,5"), Ok(F::Length(5)));
        assert_eq!(cl(b"5, 5"), Ok(F::Length(5)));
        assert_eq!(cl(b"5 ,\t5 , 5"), Ok(F::Length(5)));
        assert_eq!(cl(b"5, 05"), Ok(F::Length(5)));
        assert_eq!(cl(b"5, 6"), Err(E::ConflictingContentLength));
        assert_eq!(cl(b"5,6"), Err(E::ConflictingContentLength));
        assert_eq!(
            frame(1, &[("Content-Length", b"5"), ("Content-Length", b"5")]),
            Ok(F::Length(5))
        );
        assert_eq!(
            frame(1, &[("Content-Length", b"5"), ("content-length", b"5, 5")]),
            Ok(F::Length(5))
        );
        assert_eq!(
            frame(1, &[("Content-Length", b"5"), ("Content-Length", b"6")]),
            Err(E::ConflictingContentLength)
        );
        assert_eq!(
            frame(1, &[("Content-Length", b"5"), ("Content-Length", b"")]),
            Err(E::InvalidContentLength)
        );
        assert_eq!(E::ConflictingContentLength.status(), 400);
    }

    #[test]
    fn framing_from_a_parsed_request_head() {
        let parse = |raw: &[u8]| {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut req = httparse::Request::new(&mut headers);
            assert!(req.parse(raw).unwrap().is_complete());
            body_framing(req.version.unwrap(), req.headers)
        };
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(F::Chunked)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 42\r\n\r\n"),
            Ok(F::Length(42))
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Ok(F::None));
        assert_eq!(
            parse(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(E::TeOnHttp10)
        );
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(E::TeWithCl)
        );
    }

    #[test]
    fn display_is_lowercase() {
        for e in [
            E::TeWithCl,
            E::TeOnHttp10,
            E::InvalidTransferEncoding,
            E::MisplacedChunked,
            E::UnsupportedCoding,
            E::InvalidContentLength,
            E::ConflictingContentLength,
        ] {
            let text = e.to_string();
            assert!(!text.is_empty());
            assert_eq!(text, text.to_lowercase());
            assert_eq!(text, e.reason());
        }
    }

    proptest! {
        #[test]
        fn any_u64_content_length_round_trips(n in any::<u64>(), zeros in 0..3usize, ows in 0..3usize) {
            let value = format!("{}{}{n}{}", " ".repeat(ows), "0".repeat(zeros), "\t".repeat(ows));
            let headers = [httparse::Header { name: "Content-Length", value: value.as_bytes() }];
            let want = if n == 0 { F::None } else { F::Length(n) };
            prop_assert_eq!(body_framing(1, &headers), Ok(want));
        }

        #[test]
        fn arbitrary_values_never_panic(
            te_value in prop::option::of(prop::collection::vec(any::<u8>(), 0..32)),
            cl_value in prop::option::of(prop::collection::vec(any::<u8>(), 0..32)),
            version in 0..2u8,
        ) {
            let mut headers = Vec::new();
            if let Some(v) = &te_value {
                headers.push(httparse::Header { name: "Transfer-Encoding", value: v });
            }
            if let Some(v) = &cl_value {
                headers.push(httparse::Header { name: "Content-Length", value: v });
            }
            let result = body_framing(version, &headers);
            if te_value.is_some() && cl_value.is_some() {
                prop_assert_eq!(result, Err(E::TeWithCl));
            }
            if let Ok(F::Length(n)) = result {
                prop_assert!(n > 0);
            }
        }
    }
}
