//! TechEmpower's fortunes route, `/fortunes`: every row of `fortune`, one more added at request
//! time, sorted by message and rendered through a compiled, auto-escaped askama template.

use std::cell::RefCell;

use askama::Template;
use pinion_orm::Model;
use pinion_server::{Bytes, Ctx, Request, Response};
use pinion_web::Result;

use crate::state::db_routing;
use crate::AppState;

/// The message of the fortune the test adds at request time, with id 0.
pub const EXTRA_FORTUNE: &str = "Additional fortune added at request time.";

/// A page buffer that grew past this many bytes is dropped after use instead of kept, so one
/// unusual table cannot pin a large allocation on a worker for good. The TechEmpower page is
/// about 1.3 KiB.
const MAX_RETAINED_PAGE: usize = 64 * 1024;

pub use crate::models::Fortune;

/// A line of the page: a fortune's fields, borrowed (the extra one is not a row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// Primary key; 0 for [`EXTRA_FORTUNE`].
    pub id: i32,
    /// The text, shown HTML-escaped.
    pub message: &'a str,
}

/// `templates/fortunes.html`, compiled by askama (auto-escaped: `"&'<>` become `&#34;`,
/// `&#38;`, `&#39;`, `&#60;`, `&#62;`).
#[derive(Template)]
#[template(path = "fortunes.html")]
struct FortunesPage<'a> {
    fortunes: &'a [Line<'a>],
}

thread_local! {
    /// This worker's page buffer: each page is rendered here, then copied once into the
    /// response body, so a request allocates exactly the body and never regrows a buffer.
    static PAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Sorts `fortunes` by message (byte order, as TechEmpower asks) and renders the page.
///
/// # Errors
/// An internal error if the template fails to render (it cannot, with these fields).
pub fn render(fortunes: &mut [Line<'_>]) -> Result<Bytes> {
    fortunes.sort_unstable_by_key(|f| f.message);
    let page = FortunesPage { fortunes };
    pinion_server::telemetry::trace::render(|| {
        PAGE.with_borrow_mut(|buf| {
            buf.clear();
            page.render_into(buf)?;
            let body = Bytes::copy_from_slice(buf.as_bytes());
            if buf.capacity() > MAX_RETAINED_PAGE {
                *buf = String::new();
            }
            Ok(body)
        })
    })
}

/// `GET /fortunes`: all rows of `fortune` plus [`EXTRA_FORTUNE`], sorted by message, as
/// `text/html; charset=utf-8`. The read may go to a replica, as `/db`'s does, and bypasses
/// the query cache (TechEmpower forbids caching it).
pub async fn fortunes(ctx: &Ctx<AppState>, req: Request) -> Result<Response> {
    let routing = db_routing(ctx, &req)?;
    let rows = Fortune::objects().cache(false).all(&routing).await?;
    let mut lines = Vec::with_capacity(rows.len() + 1);
    lines.push(Line {
        id: 0,
        message: EXTRA_FORTUNE,
    });
    lines.extend(rows.iter().map(|f| Line {
        id: f.id,
        message: &f.message,
    }));
    Ok(Response::html(render(&mut lines)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>\
                        <tr><th>id</th><th>message</th></tr>";
    const TAIL: &str = "</table></body></html>";

    #[test]
    fn sorts_by_message_and_escapes() {
        let mut fortunes = [
            Line {
                id: 2,
                message: "b & 'c'",
            },
            Line {
                id: 1,
                message: "<script>alert(\"x\");</script>",
            },
            Line {
                id: 3,
                message: "フレームワーク",
            },
            Line {
                id: 0,
                message: EXTRA_FORTUNE,
            },
        ];
        let body = render(&mut fortunes).expect("renders");
        let expected = format!(
            "{HEAD}\
             <tr><td>1</td><td>&#60;script&#62;alert(&#34;x&#34;);&#60;/script&#62;</td></tr>\
             <tr><td>0</td><td>{EXTRA_FORTUNE}</td></tr>\
             <tr><td>2</td><td>b &#38; &#39;c&#39;</td></tr>\
             <tr><td>3</td><td>フレームワーク</td></tr>\
             {TAIL}"
        );
        assert_eq!(std::str::from_utf8(&body), Ok(expected.as_str()));
    }

    #[test]
    fn an_empty_table_is_a_page_without_rows() {
        let body = render(&mut []).expect("renders");
        assert_eq!(&body[..], format!("{HEAD}{TAIL}").as_bytes());
    }

    #[test]
    fn the_buffer_is_reused_and_each_page_stands_alone() {
        let first = render(&mut [Line {
            id: 1,
            message: "long message",
        }])
        .expect("renders");
        let second = render(&mut [Line {
            id: 2,
            message: "x",
        }])
        .expect("renders");
        assert!(first.ends_with(format!("long message</td></tr>{TAIL}").as_bytes()));
        assert_eq!(
            &second[..],
            format!("{HEAD}<tr><td>2</td><td>x</td></tr>{TAIL}").as_bytes()
        );
        assert!(PAGE.with_borrow(String::capacity) >= first.len());
    }
}
