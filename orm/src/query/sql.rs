//! SQL text and its bound parameters, written from a query set. Identifiers come from the
//! model (quoted by the derive); every value becomes `$n`.
//!
//! A query set is walked through a [`Sink`]: [`Sql`] writes the text and keeps the values,
//! [`Shaped`](super::shape::Shaped) records only which static pieces and placeholders the
//! text is made of (the statement's key) and borrows the values. Both walk the same code, so
//! a statement found by its key always gets the values its text expects.

use tokio_postgres::types::ToSql;

use crate::model::{ModelMeta, Node, Param};

/// A value as a query set holds it, borrowed for the statement being written.
#[derive(Clone, Copy)]
pub(crate) enum Bound<'q> {
    Param(&'q Param),
    I64(&'q i64),
}

impl<'q> Bound<'q> {
    /// The value as tokio-postgres encodes it.
    pub(crate) fn as_sql(self) -> &'q (dyn ToSql + Sync) {
        match self {
            Bound::Param(p) => p.as_sql(),
            Bound::I64(n) => n,
        }
    }

    fn to_param(self) -> Param {
        match self {
            Bound::Param(p) => p.clone(),
            Bound::I64(&n) => Param::I64(n),
        }
    }
}

/// `LIMIT` literals the ORM writes itself (`first` 1, `get` 2): static text, so a
/// statement's key can name them.
const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Where a query set's statement is written: static text pieces and values, in order.
pub(crate) trait Sink<'q> {
    /// Appends a piece of text that lives as long as the program (SQL keywords, the
    /// model's quoted identifiers).
    fn text(&mut self, s: &'static str);

    /// Appends the next placeholder (`$n`) for `value`.
    fn value(&mut self, value: Bound<'q>);

    /// Writes column `index` of `meta`, qualified by `alias` when given.
    fn column(&mut self, meta: &ModelMeta, alias: Option<&'static str>, index: usize) -> &mut Self
    where
        Self: Sized,
    {
        if let Some(alias) = alias {
            self.text(alias);
            self.text(".");
        }
        self.text(meta.quoted_columns[index]);
        self
    }

    /// Writes every column of `meta`, qualified by `alias`.
    fn select_list(&mut self, meta: &ModelMeta, alias: Option<&'static str>) -> &mut Self
    where
        Self: Sized,
    {
        match alias {
            None => self.text(meta.select),
            Some(_) => {
                for i in 0..meta.quoted_columns.len() {
                    if i > 0 {
                        self.text(", ");
                    }
                    self.column(meta, alias, i);
                }
            }
        }
        self
    }

    /// Writes ` WHERE a AND b …` for `filters` (nothing when there is none).
    fn filters(
        &mut self,
        meta: &ModelMeta,
        alias: Option<&'static str>,
        filters: &'q [Node],
    ) -> &mut Self
    where
        Self: Sized,
    {
        for (i, node) in filters.iter().enumerate() {
            self.text(if i == 0 { " WHERE " } else { " AND " });
            self.node(meta, alias, node, filters.len() > 1);
        }
        self
    }

    /// Writes one condition; `nested` adds parentheses where precedence needs them.
    fn node(&mut self, meta: &ModelMeta, alias: Option<&'static str>, node: &'q Node, nested: bool)
    where
        Self: Sized,
    {
        match node {
            Node::Compare { column, op, value } => {
                self.column(meta, alias, *column);
                self.text(" ");
                self.text(op);
                self.text(" ");
                self.value(Bound::Param(value));
            }
            Node::Any { column, values } => {
                self.column(meta, alias, *column);
                self.text(" = ANY(");
                self.value(Bound::Param(values));
                self.text(")");
            }
            Node::Null { column, negated } => {
                self.column(meta, alias, *column);
                self.text(if *negated { " IS NOT NULL" } else { " IS NULL" });
            }
            Node::And(all) => self.join(meta, alias, all, " AND ", nested),
            Node::Or(any) => self.join(meta, alias, any, " OR ", nested),
            Node::Not(inner) => {
                self.text("NOT (");
                self.node(meta, alias, inner, false);
                self.text(")");
            }
        }
    }

    /// Writes `nodes` separated by `sep`, in parentheses when `nested`.
    fn join(
        &mut self,
        meta: &ModelMeta,
        alias: Option<&'static str>,
        nodes: &'q [Node],
        sep: &'static str,
        nested: bool,
    ) where
        Self: Sized,
    {
        if nested {
            self.text("(");
        }
        for (i, node) in nodes.iter().enumerate() {
            if i > 0 {
                self.text(sep);
            }
            self.node(meta, alias, node, true);
        }
        if nested {
            self.text(")");
        }
    }

    /// Writes ` ORDER BY …`.
    fn order(
        &mut self,
        meta: &ModelMeta,
        alias: Option<&'static str>,
        order: &[(usize, bool)],
    ) -> &mut Self
    where
        Self: Sized,
    {
        for (i, &(column, desc)) in order.iter().enumerate() {
            self.text(if i == 0 { " ORDER BY " } else { ", " });
            self.column(meta, alias, column);
            if desc {
                self.text(" DESC");
            }
        }
        self
    }

    /// Writes ` LIMIT $n` / ` OFFSET $n` with the values bound; `most` (the ORM's own 1 or 2
    /// of `first` and `get`, never a caller's value) is written as a literal when the caller
    /// set no lower limit, so that a primary-key read binds one parameter, not two.
    fn slice(
        &mut self,
        limit: Option<&'q i64>,
        most: Option<u8>,
        offset: Option<&'q i64>,
    ) -> &mut Self
    where
        Self: Sized,
    {
        match (limit, most) {
            (Some(l), Some(m)) if *l <= i64::from(m) => {
                self.text(" LIMIT ");
                self.value(Bound::I64(l));
            }
            (_, Some(m)) => {
                self.text(" LIMIT ");
                self.text(DIGITS[usize::from(m.min(9))]);
            }
            (Some(l), None) => {
                self.text(" LIMIT ");
                self.value(Bound::I64(l));
            }
            (None, None) => {}
        }
        if let Some(offset) = offset {
            self.text(" OFFSET ");
            self.value(Bound::I64(offset));
        }
        self
    }
}

/// A statement being written: its text and its parameters, `$1` first.
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) params: Vec<Param>,
}

impl<'q> Sink<'q> for Sql {
    fn text(&mut self, s: &'static str) {
        self.text.push_str(s);
    }

    fn value(&mut self, value: Bound<'q>) {
        self.bind(value.to_param());
    }
}

impl Sql {
    pub(crate) fn new(capacity: usize) -> Sql {
        Sql {
            text: String::with_capacity(capacity),
            params: Vec::with_capacity(4),
        }
    }

    pub(crate) fn push(&mut self, s: &str) -> &mut Sql {
        self.text.push_str(s);
        self
    }

    /// Binds `value` as the next parameter and writes its placeholder.
    pub(crate) fn bind(&mut self, value: Param) -> &mut Sql {
        self.params.push(value);
        self.placeholder(self.params.len())
    }

    /// Writes `$n`.
    pub(crate) fn placeholder(&mut self, n: usize) -> &mut Sql {
        self.text.push('$');
        self.text.push_str(itoa::Buffer::new().format(n));
        self
    }

    /// The parameters as tokio-postgres takes them.
    pub(crate) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(Param::as_sql).collect()
    }
}

impl std::fmt::Debug for Sql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)?;
        for (i, p) in self.params.iter().enumerate() {
            write!(
                f,
                "{}${} = {p:?}",
                if i == 0 { " -- " } else { ", " },
                i + 1
            )?;
        }
        Ok(())
    }
}
