//! The ORM's statements on this thread, found by their text or by a query set's shape
//! ([`Shaped`]): one [`PipelineStatement`] per distinct SQL, so that each pipeline
//! connection prepares it once. Kept per thread (a worker's connections are its own) and for
//! the thread's life: statements come from the application's code, a bounded set. A text has
//! one id in the whole process, so that the query cache, which every thread shares, can name
//! a statement by its id.

use std::cell::RefCell;
use std::rc::Rc;

use rustc_hash::FxHashMap;

use std::sync::LazyLock;

use parking_lot::Mutex;

use crate::pipeline::{self, PipelineStatement};
use crate::query::Shaped;

#[derive(Default)]
struct Statements {
    by_text: FxHashMap<Box<str>, Rc<PipelineStatement>>,
    by_shape: FxHashMap<Box<[u64]>, Rc<PipelineStatement>>,
}

thread_local! {
    static STATEMENTS: RefCell<Statements> = RefCell::default();
}

/// Every thread's ids by text; consulted once per thread and text.
static IDS: LazyLock<Mutex<FxHashMap<Box<str>, usize>>> = LazyLock::new(Mutex::default);

/// How many distinct texts make [`process_id`] warn: the application's code writes a bounded
/// set of statements, and far more than this means SQL built from input (an `OR` of as many
/// terms as a request sent, raw SQL with values in its text), each text prepared on every
/// connection and kept for the process's life.
const MANY_TEXTS: usize = 10_000;

fn process_id(sql: &str) -> usize {
    let mut ids = IDS.lock();
    if let Some(&id) = ids.get(sql) {
        return id;
    }
    let id = pipeline::next_id();
    ids.insert(sql.into(), id);
    if ids.len() == MANY_TEXTS {
        tracing::warn!(
            statements = MANY_TEXTS,
            "the ORM has prepared this many distinct SQL texts: is SQL built from request input? \
             Each text is prepared on every connection and kept; bind values instead"
        );
    }
    id
}

/// The statement of `sql`, its parameter types inferred by the server.
pub(crate) fn by_text(sql: &str) -> Rc<PipelineStatement> {
    STATEMENTS.with_borrow_mut(|s| text_entry(s, sql))
}

fn text_entry(s: &mut Statements, sql: &str) -> Rc<PipelineStatement> {
    if let Some(stmt) = s.by_text.get(sql) {
        return Rc::clone(stmt);
    }
    let stmt = Rc::new(PipelineStatement::inferred(process_id(sql), sql));
    s.by_text.insert(sql.into(), Rc::clone(&stmt));
    stmt
}

/// The statement `shaped` recorded; `text` writes its SQL, called only the first time this
/// thread meets the shape (or every time for a shape too long for a key).
pub(crate) fn by_shape(
    shaped: &Shaped<'_>,
    text: impl FnOnce() -> String,
) -> Rc<PipelineStatement> {
    STATEMENTS.with_borrow_mut(|s| {
        let Some(key) = shaped.key() else {
            return text_entry(s, &text());
        };
        if let Some(stmt) = s.by_shape.get(key) {
            return Rc::clone(stmt);
        }
        // Through the text map: a statement written by hand with the same text is the same
        // prepared statement.
        let stmt = text_entry(s, &text());
        s.by_shape.insert(key.into(), Rc::clone(&stmt));
        stmt
    })
}
