//! A query set's statement known by its shape: which static pieces of text and which
//! placeholders it is made of, without writing the text. Query sets that differ only in
//! their values (a primary-key read of another row) have one shape, so a read finds its
//! prepared statement with a short key and borrows its values, instead of writing the SQL
//! and looking it up by the text on every call.

use tokio_postgres::types::ToSql;

use super::sql::{Bound, Sink};
use super::QuerySet;
use crate::model::Node;

/// The longest key kept inline: a statement of more pieces is written out and found by its
/// text instead.
const MAX_WORDS: usize = 32;

/// A placeholder in a key; a text piece can never be this word (see [`Shaped::text`]).
const PLACEHOLDER: u64 = u64::MAX;

/// The shape of one statement and its values, recorded by walking a query set.
pub(crate) struct Shaped<'q> {
    words: [u64; MAX_WORDS],
    len: usize,
    /// The walk did not fit the key (or a piece could not be packed): no key.
    overflow: bool,
    /// The values, `$1` first.
    pub(crate) params: ParamList<'q>,
}

/// Values borrowed for one statement: up to [`INLINE_PARAMS`] without an allocation (most
/// reads bind one or two).
pub(crate) struct ParamList<'q> {
    inline: [&'q (dyn ToSql + Sync); INLINE_PARAMS],
    len: usize,
    /// Every value once there are more than fit inline.
    spilled: Vec<&'q (dyn ToSql + Sync)>,
}

/// How many values a [`ParamList`] holds inline.
const INLINE_PARAMS: usize = 2;

/// What fills the unused inline slots; never read.
const UNUSED: &(dyn ToSql + Sync) = &0i32;

impl<'q> ParamList<'q> {
    pub(crate) fn new() -> ParamList<'q> {
        ParamList {
            inline: [UNUSED; INLINE_PARAMS],
            len: 0,
            spilled: Vec::new(),
        }
    }

    #[inline(always)]
    pub(crate) fn push(&mut self, value: &'q (dyn ToSql + Sync)) {
        if self.len < INLINE_PARAMS {
            self.inline[self.len] = value;
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline);
            }
            self.spilled.push(value);
        }
        self.len += 1;
    }
}

impl<'q> std::ops::Deref for ParamList<'q> {
    type Target = [&'q (dyn ToSql + Sync)];

    fn deref(&self) -> &Self::Target {
        if self.len > INLINE_PARAMS {
            &self.spilled
        } else {
            &self.inline[..self.len]
        }
    }
}

impl<'q> Shaped<'q> {
    pub(crate) fn new() -> Shaped<'q> {
        Shaped {
            words: [0; MAX_WORDS],
            len: 0,
            overflow: false,
            params: ParamList::new(),
        }
    }

    #[inline(always)]
    fn word(&mut self, w: u64) {
        match self.words.get_mut(self.len) {
            Some(slot) => {
                *slot = w;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    /// The key: each piece as its address and length, each placeholder as [`PLACEHOLDER`].
    /// Two walks with the same key wrote the same text: a `'static` string's address and
    /// length fix its bytes, and placeholders are numbered in order. `None` when the walk
    /// did not fit.
    pub(crate) fn key(&self) -> Option<&[u64]> {
        (!self.overflow).then(|| &self.words[..self.len])
    }
}

impl<'q> Sink<'q> for Shaped<'q> {
    #[inline(always)]
    fn text(&mut self, s: &'static str) {
        // Addresses fit in 48 bits on every 64-bit target Linux runs user space on, and no
        // piece of SQL is 32 KiB long; one that does not pack leaves the walk without a key.
        let address = s.as_ptr() as u64;
        let len = s.len() as u64;
        if address >> 48 != 0 || len >> 15 != 0 {
            self.overflow = true;
            return;
        }
        self.word(address | len << 48);
    }

    #[inline(always)]
    fn value(&mut self, value: Bound<'q>) {
        self.word(PLACEHOLDER);
        self.params.push(value.as_sql());
    }
}

/// The values of `set` when it writes the same SQL as `lead` (both read with the same `most`
/// and default order), else `None`: the same filters but for their values, the same order,
/// and the same kind of slice — what the walk in [`Sink`] writes depends on nothing else. The
/// values come in the walk's order: the filters' depth first, then a bound limit, then the
/// offset. A batch compares each set with the first of its shape instead of walking it and
/// looking the shape up. Sets that reach one text by other trees (`filter(a & b)` and
/// `filter(a).filter(b)`) may compare unequal: they are then looked up apart, and find the
/// same statement.
pub(crate) fn values_if_same<'q, M>(
    lead: &QuerySet<M>,
    set: &'q QuerySet<M>,
    most: Option<u8>,
) -> Option<ParamList<'q>> {
    let kind = slice_kind(set.limit, most);
    if lead.filters.len() != set.filters.len()
        || lead.order != set.order
        || slice_kind(lead.limit, most) != kind
        || lead.offset.is_some() != set.offset.is_some()
    {
        return None;
    }
    let mut values = ParamList::new();
    for (a, b) in lead.filters.iter().zip(set.filters.iter()) {
        if !node_values(a, b, &mut values) {
            return None;
        }
    }
    if let (SliceKind::Bound, Some(limit)) = (kind, &set.limit) {
        values.push(limit);
    }
    if let Some(offset) = &set.offset {
        values.push(offset);
    }
    Some(values)
}

/// Which of [`Sink::slice`]'s `LIMIT` forms a limit takes.
#[derive(PartialEq, Eq, Clone, Copy)]
enum SliceKind {
    None,
    Bound,
    Literal,
}

fn slice_kind(limit: Option<i64>, most: Option<u8>) -> SliceKind {
    match (limit, most) {
        (Some(l), Some(m)) if l <= i64::from(m) => SliceKind::Bound,
        (_, Some(_)) => SliceKind::Literal,
        (Some(_), None) => SliceKind::Bound,
        (None, None) => SliceKind::None,
    }
}

/// Whether `b` has `a`'s tree; `b`'s values appended to `values` as it goes.
fn node_values<'q>(a: &Node, b: &'q Node, values: &mut ParamList<'q>) -> bool {
    match (a, b) {
        (
            Node::Compare { column, op, .. },
            Node::Compare {
                column: c2,
                op: o2,
                value,
            },
        ) if column == c2 && op == o2 => {
            values.push(value.as_sql());
            true
        }
        (
            Node::Any { column, .. },
            Node::Any {
                column: c2,
                values: v,
            },
        ) if column == c2 => {
            values.push(v.as_sql());
            true
        }
        (
            Node::Null { column, negated },
            Node::Null {
                column: c2,
                negated: n2,
            },
        ) => column == c2 && negated == n2,
        (Node::And(x), Node::And(y)) | (Node::Or(x), Node::Or(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| node_values(p, q, values))
        }
        (Node::Not(x), Node::Not(y)) => node_values(x, y, values),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use crate::model::Model;
    use crate::query::QuerySet;

    #[derive(Debug, Clone, crate::Model)]
    #[model(table = "item")]
    struct Item {
        #[model(primary_key)]
        id: i32,
        name: String,
        price: i64,
        note: Option<String>,
    }

    /// A query set and the `most` and default order it is read with.
    type Read = (QuerySet<Item>, Option<u8>, Option<(usize, bool)>);

    /// Query sets of many shapes, some sharing one; each twice with other values.
    fn sets(v: i32) -> Vec<Read> {
        let pk = Some((Item::META.primary_key, false));
        let all = || Item::objects();
        vec![
            (all().filter(Item::ID.eq(v)), Some(2), None),
            (all().filter(Item::ID.eq(v + 1)), Some(2), None),
            (all().filter(Item::ID.ne(v)), Some(2), None),
            (all().filter(Item::ID.eq(v)), Some(1), pk),
            (all().filter(Item::ID.eq(v)), None, None),
            (all().filter(Item::PRICE.lt(i64::from(v))), None, None),
            (all().filter(Item::NAME.eq(format!("n{v}"))), None, None),
            (all().filter(Item::NAME.icontains("50%_off")), None, None),
            (all().filter(Item::ID.is_in([v, v + 1, v + 2])), None, None),
            (all().filter(Item::ID.is_in([v])), None, None),
            (all().filter(Item::NOTE.is_null()), None, None),
            (all().filter(Item::NOTE.is_not_null()), None, None),
            (all().filter(Item::ID.eq(v) & Item::PRICE.gt(1)), None, None),
            (
                all().filter(Item::ID.eq(v)).filter(Item::PRICE.gt(1)),
                None,
                None,
            ),
            (all().filter(Item::ID.eq(v) | Item::PRICE.gt(1)), None, None),
            (
                all().filter((Item::ID.eq(v) | Item::PRICE.gt(1)) & Item::NOTE.is_null()),
                None,
                None,
            ),
            (
                all().filter(Item::ID.eq(v) | (Item::PRICE.gt(1) & Item::NOTE.is_null())),
                None,
                None,
            ),
            (all().exclude(Item::ID.eq(v)), None, None),
            (
                all().order_by(Item::PRICE.desc()).order_by(Item::ID.asc()),
                None,
                None,
            ),
            (all().order_by(Item::ID.desc()), Some(1), pk),
            (all().limit(i64::from(v)), None, None),
            (all().limit(1), Some(2), None),
            (all().limit(5), Some(2), None),
            (all().limit(5).offset(i64::from(v)), None, None),
            (all().offset(3), Some(1), pk),
            (all(), None, None),
            (all(), Some(1), pk),
        ]
    }

    #[test]
    fn a_shape_names_one_text_and_borrows_the_values_the_text_binds() {
        let first = sets(7);
        let second = sets(1000);
        let mut seen: Vec<(Rc<crate::pipeline::PipelineStatement>, String)> = Vec::new();
        for ((qs, most, order), (other, _, _)) in first.iter().zip(&second) {
            for q in [qs, other] {
                let sql = q.select_sql_at_most(*most, *order);
                let (stmt, params) = q.select_statement(*most, *order);
                assert_eq!(stmt.sql(), sql.text);
                let expected: Vec<String> = sql.params.iter().map(|p| format!("{p:?}")).collect();
                let got: Vec<String> = params.iter().map(|p| format!("{p:?}")).collect();
                assert_eq!(got, expected, "{}", sql.text);
                for (s, text) in &seen {
                    assert_eq!(
                        Rc::ptr_eq(s, &stmt),
                        *text == sql.text,
                        "{text} / {}",
                        sql.text
                    );
                }
                seen.push((stmt, sql.text));
            }
        }
        // Four pairs of sets write one text: `eq` on two values, `is_in` of three values
        // and of one (one array), `filter(a & b)` and `filter(a).filter(b)`, and a bound
        // limit with and without `most`.
        let distinct: std::collections::HashSet<&str> =
            seen.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(distinct.len(), first.len() - 4, "{distinct:#?}");
    }

    #[test]
    fn sets_of_the_same_shape_write_the_same_text_with_their_own_values() {
        let first = sets(7);
        let all: Vec<Read> = first.iter().cloned().chain(sets(1000)).collect();
        for (i, (a, most, order)) in all.iter().enumerate() {
            let text = a.select_sql_at_most(*most, *order);
            for (j, (b, most_b, order_b)) in all.iter().enumerate() {
                if (most, order) != (most_b, order_b) {
                    continue;
                }
                let other = b.select_sql_at_most(*most, *order);
                let values = super::values_if_same(a, b, *most);
                let same = values.is_some();
                if let Some(values) = values {
                    assert_eq!(text.text, other.text);
                    let got: Vec<String> = values.iter().map(|p| format!("{p:?}")).collect();
                    let bound: Vec<String> =
                        other.params.iter().map(|p| format!("{p:?}")).collect();
                    assert_eq!(got, bound, "{}", other.text);
                }
                // A set and its twin of other values are always found the same.
                if i % first.len() == j % first.len() {
                    assert!(same, "{} / {}", text.text, other.text);
                }
            }
        }
    }

    #[test]
    fn a_walk_too_long_for_a_key_is_found_by_its_text() {
        let mut wide = Item::ID.eq(0);
        for i in 1..40 {
            wide = wide | Item::ID.eq(i);
        }
        let qs = Item::objects().filter(wide);
        let mut shaped = super::Shaped::new();
        qs.write_select(&mut shaped, None, None);
        assert!(shaped.key().is_none());
        let (a, params) = qs.select_statement(None, None);
        let (b, _) = qs.select_statement(None, None);
        assert!(Rc::ptr_eq(&a, &b));
        assert_eq!(params.len(), 40);
        assert_eq!(a.sql(), qs.select_sql_at_most(None, None).text);
    }
}
