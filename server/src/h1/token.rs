//! Lexical rules shared by the codec's parsers.

/// Whether `b` may appear in a token (RFC 9110 §5.6.2): field names, transfer-coding names,
/// chunk-extension and trailer names.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    ) || b.is_ascii_alphanumeric()
}

/// The bit that tells an ASCII letter's cases apart, in every byte of a word.
const FOLD64: u64 = u64::from_ne_bytes([0x20; 8]);
/// [`FOLD64`] in four bytes.
const FOLD32: u32 = u32::from_ne_bytes([0x20; 4]);

/// Whether `a` equals `lower` ignoring ASCII case, where `lower` is a constant of lowercase
/// letters, digits and `-` (a field name, `close`, `100-continue`).
///
/// Exact when `a` holds no control character other than HTAB, which is what httparse lets
/// through in field names (tokens) and values: `x | 0x20` equals a lowercase letter only for
/// that letter in either case, and equals `-` or a digit only for itself or a control
/// character. Four or eight bytes at a time: the byte loop of `eq_ignore_ascii_case` cost
/// about ten instructions per byte of every matching name and token (callgrind, a
/// TechEmpower request: `Connection: keep-alive` alone cost ~200).
#[inline]
pub(crate) fn eq_lower(a: &[u8], lower: &[u8]) -> bool {
    let n = lower.len();
    if a.len() != n {
        return false;
    }
    if n >= 8 {
        let mut at = 0;
        while at + 8 <= n {
            if word(a, at) | FOLD64 != word(lower, at) {
                return false;
            }
            at += 8;
        }
        // The last eight bytes, overlapping the word before: no byte is left out.
        at == n || word(a, n - 8) | FOLD64 == word(lower, n - 8)
    } else if n >= 4 {
        half(a, 0) | FOLD32 == half(lower, 0) && half(a, n - 4) | FOLD32 == half(lower, n - 4)
    } else {
        a.iter().zip(lower).all(|(&x, &c)| x | 0x20 == c)
    }
}

/// The eight bytes of `s` from `at`, little-endian: the unit of the word-at-a-time scans here
/// and in the head parser.
#[inline]
pub(crate) fn word(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The four bytes of `s` from `at`, little-endian.
#[inline]
fn half(s: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u32::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `eq_lower` is compared with: the standard library's byte loop.
    fn by_bytes(a: &[u8], lower: &[u8]) -> bool {
        a.eq_ignore_ascii_case(lower)
    }

    #[test]
    fn every_byte_that_reaches_it_folds_as_ascii_does() {
        let classes = b"az-09kq";
        for &c in classes {
            for x in 0..=255u8 {
                if x < 0x20 && x != b'\t' {
                    continue; // httparse refuses these in names and values
                }
                for len in [1usize, 3, 4, 5, 8, 9, 12, 16, 17] {
                    let lower = vec![c; len];
                    for at in 0..len {
                        let mut a = lower.clone();
                        a[at] = x;
                        assert_eq!(
                            eq_lower(&a, &lower),
                            by_bytes(&a, &lower),
                            "byte {x:#04x} at {at} of {len} against {:?}",
                            c as char
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn names_and_tokens_the_parser_looks_for() {
        for (a, lower, eq) in [
            (&b"Host"[..], &b"host"[..], true),
            (b"HOST", b"host", true),
            (b"Hosts", b"host", false),
            (b"Connection", b"connection", true),
            (b"Connectioo", b"connection", false),
            (b"cOnNeCtIoN", b"connection", true),
            (b"keep-alive", b"keep-alive", true),
            (b"Keep-Alive", b"keep-alive", true),
            (b"keep_alive", b"keep-alive", false),
            (b"100-Continue", b"100-continue", true),
            (b"Transfer-Encoding", b"transfer-encoding", true),
            (b"Transfer-Encodinh", b"transfer-encoding", false),
            (b"X-Request-Id", b"x-request-id", true),
            (b"TE", b"te", true),
            (b"", b"", true),
        ] {
            assert_eq!(eq_lower(a, lower), eq, "{:?}", String::from_utf8_lossy(a));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Any token against any lowercase constant of the same length, built from the same
        /// letters so that near misses (one byte off, another case) are common.
        #[test]
        fn agrees_with_the_standard_byte_loop(
            pair in proptest::collection::vec(
                (proptest::sample::select(&b"aAbBzZ-09"[..]), any::<bool>()),
                0..24,
            )
        ) {
            let lower: Vec<u8> = pair.iter().map(|&(b, _)| b.to_ascii_lowercase()).collect();
            let a: Vec<u8> = pair
                .iter()
                .map(|&(b, flip)| if flip && b.is_ascii_alphabetic() { b ^ 0x20 } else { b })
                .collect();
            prop_assert_eq!(eq_lower(&a, &lower), by_bytes(&a, &lower));
            let mut other = a.clone();
            if let Some(last) = other.last_mut() {
                *last = if *last == b'0' { b'9' } else { b'0' };
                prop_assert_eq!(eq_lower(&other, &lower), by_bytes(&other, &lower));
            }
        }
    }
}
