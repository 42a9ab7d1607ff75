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
