//! The notification a publish sends on [`CHANNEL`](crate::CHANNEL): the whole event when it
//! fits in `NOTIFY`'s payload, else only its id (the row is fetched by the listener).
//!
//! Whole: `{id}:{channel length}:{event length}:{channel}{event}{data}`, lengths in bytes, so
//! that a channel, name or data may hold any character. Id only: `{id}`.

/// `NOTIFY`'s payload must be shorter than this many bytes (PostgreSQL refuses longer ones
/// with "payload string too long").
pub(crate) const NOTIFY_LIMIT: usize = 8000;

/// The most digits an `i64` id takes, counted before the id is known.
const ID_DIGITS: usize = 20;

/// One published event, as the listener hands it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The row's id: the SSE `id`, what `Last-Event-ID` names.
    pub id: i64,
    /// The channel it was published to (`order-42`).
    pub channel: Box<str>,
    /// The event's name (`progress`): what `sse-swap` listens for.
    pub event: Box<str>,
    /// The event's data.
    pub data: Box<str>,
}

/// A notification's payload, parsed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Payload {
    /// The whole event.
    Whole(Published),
    /// Too large for `NOTIFY`: only the row's id.
    IdOnly(i64),
}

/// The part of the whole payload after the id (`:{lengths}:`), or `None` when the event is
/// too large for `NOTIFY` and only its id is sent.
pub(crate) fn header(channel: &str, event: &str, data: &str) -> Option<String> {
    let header = format!(":{}:{}:", channel.len(), event.len());
    let total = ID_DIGITS + header.len() + channel.len() + event.len() + data.len();
    (total < NOTIFY_LIMIT).then_some(header)
}

/// Parses a payload; `None` for one no publish sends (another program on the channel).
pub(crate) fn parse(payload: &str) -> Option<Payload> {
    let Some((id, rest)) = payload.split_once(':') else {
        return payload.parse().ok().map(Payload::IdOnly);
    };
    let id = id.parse().ok()?;
    let (channel_len, rest) = rest.split_once(':')?;
    let (event_len, rest) = rest.split_once(':')?;
    let (channel_len, event_len): (usize, usize) =
        (channel_len.parse().ok()?, event_len.parse().ok()?);
    let channel = rest.get(..channel_len)?;
    let event = rest.get(channel_len..channel_len.checked_add(event_len)?)?;
    let data = rest.get(channel_len + event_len..)?;
    Some(Payload::Whole(Published {
        id,
        channel: channel.into(),
        event: event.into(),
        data: data.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(id: i64, channel: &str, event: &str, data: &str) -> String {
        format!(
            "{id}{}{channel}{event}{data}",
            header(channel, event, data).expect("fits")
        )
    }

    #[test]
    fn a_whole_event_comes_back_whatever_it_holds() {
        for (channel, event, data) in [
            ("orders-7", "order", "<tr><td>#12</td></tr>"),
            ("a:b", "x:y", "3:4:five\nsix"),
            ("é", "ü", ""),
            ("", "", ":"),
        ] {
            assert_eq!(
                parse(&whole(42, channel, event, data)),
                Some(Payload::Whole(Published {
                    id: 42,
                    channel: channel.into(),
                    event: event.into(),
                    data: data.into(),
                }))
            );
        }
    }

    #[test]
    fn past_the_limit_only_the_id_is_sent() {
        let big = "x".repeat(NOTIFY_LIMIT);
        assert_eq!(header("c", "e", &big), None);
        let fits = "x".repeat(NOTIFY_LIMIT - ID_DIGITS - 10);
        assert!(header("c", "e", &fits).is_some());
        assert_eq!(parse("9000000000"), Some(Payload::IdOnly(9_000_000_000)));
    }

    #[test]
    fn foreign_payloads_are_refused() {
        for p in [
            "",
            "hello",
            "1:2",
            "1:x:0:",
            "1:5:0:abc",
            "x:1:1:ab",
            "1:1:99999999999999999999:a",
        ] {
            assert_eq!(parse(p), None, "{p:?}");
        }
    }
}
