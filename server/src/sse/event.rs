//! [`Event`]: one Server-Sent Event, rendered in the `text/event-stream` format.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

/// One event of a Server-Sent Events stream: its `event` name, `id`, `data` and `retry`, or a
/// comment.
///
/// Multi-line data becomes several `data:` lines (the browser joins them with `\n`). Line
/// breaks in an id or event name would end the field early and start another one, so they
/// are replaced by spaces; an id with NUL is dropped, since browsers ignore such ids.
///
/// ```
/// use pinion_server::sse::Event;
///
/// let event = Event::new().event("price").id("42").data("{\"eur\": 3}\n{\"usd\": 4}");
/// assert_eq!(
///     event.to_bytes(),
///     "event: price\nid: 42\ndata: {\"eur\": 3}\ndata: {\"usd\": 4}\n\n"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    event: Option<String>,
    id: Option<String>,
    data: Option<String>,
    retry: Option<Duration>,
    comment: Option<String>,
}

impl Event {
    /// An empty event: give it data, a name, an id.
    pub fn new() -> Event {
        Event::default()
    }

    /// An event whose data is `data` (the common case).
    pub fn data_only(data: impl Into<String>) -> Event {
        Event::new().data(data)
    }

    /// The event's data; `\n`, `\r\n` and `\r` split it into lines.
    pub fn data(mut self, data: impl Into<String>) -> Event {
        self.data = Some(data.into());
        self
    }

    /// The data as JSON (htmx and `EventSource` handlers parse it with `JSON.parse`).
    ///
    /// # Errors
    /// When `value` cannot be serialised.
    pub fn json_data(self, value: &impl serde::Serialize) -> Result<Event, serde_json::Error> {
        Ok(self.data(serde_json::to_string(value)?))
    }

    /// The event's name: what `addEventListener` (or htmx's `sse-swap`) listens for.
    pub fn event(mut self, name: impl Into<String>) -> Event {
        self.event = Some(name.into());
        self
    }

    /// The event's id: the browser sends the last one back in `Last-Event-ID` when it
    /// reconnects (see [`LastEventId`](super::LastEventId)).
    pub fn id(mut self, id: impl Into<String>) -> Event {
        self.id = Some(id.into());
        self
    }

    /// How long the browser waits before reconnecting after the stream ends.
    pub fn retry(mut self, after: Duration) -> Event {
        self.retry = Some(after);
        self
    }

    /// A comment line (`: text`), ignored by clients.
    pub fn comment(mut self, text: impl Into<String>) -> Event {
        self.comment = Some(text.into());
        self
    }

    /// The event as it goes on the wire, ending with the blank line that dispatches it.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64 + self.data.as_ref().map_or(0, String::len));
        if let Some(comment) = &self.comment {
            for line in lines(comment) {
                field(&mut out, "", line);
            }
        }
        if let Some(name) = &self.event {
            field(&mut out, "event", &single_line(name));
        }
        if let Some(id) = self.id.as_ref().filter(|id| !id.contains('\0')) {
            field(&mut out, "id", &single_line(id));
        }
        if let Some(retry) = self.retry {
            field(&mut out, "retry", &retry.as_millis().to_string());
        }
        if let Some(data) = &self.data {
            for line in lines(data) {
                field(&mut out, "data", line);
            }
        }
        if out.is_empty() {
            // Nothing at all would not even be a blank line's worth: send an empty comment.
            out.put_slice(b":");
            out.put_u8(b'\n');
        }
        out.put_u8(b'\n');
        out.freeze()
    }
}

/// `name: value\n` (a comment when `name` is empty).
fn field(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_u8(b':');
    if !value.is_empty() {
        out.put_u8(b' ');
        out.put_slice(value.as_bytes());
    }
    out.put_u8(b'\n');
}

/// The lines of `text` as the event-stream format splits them: on `\r\n`, `\n` or `\r`.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n')
        .flat_map(|l| l.strip_suffix('\r').unwrap_or(l).split('\r'))
}

fn single_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_break_starts_a_data_line() {
        let e = Event::data_only("a\nb\r\nc\rd\n");
        assert_eq!(
            e.to_bytes(),
            "data: a\ndata: b\ndata: c\ndata: d\ndata:\n\n"
        );
    }

    #[test]
    fn fields_come_in_order_and_cannot_be_smuggled() {
        let e = Event::new()
            .comment("hi")
            .event("up\ndata: x")
            .id("7\r\nretry: 1")
            .retry(Duration::from_millis(2500))
            .data("");
        assert_eq!(
            e.to_bytes(),
            ": hi\nevent: up data: x\nid: 7  retry: 1\nretry: 2500\ndata:\n\n"
        );
        assert_eq!(Event::new().id("a\0b").data("x").to_bytes(), "data: x\n\n");
        assert_eq!(Event::new().to_bytes(), ":\n\n");
    }
}
