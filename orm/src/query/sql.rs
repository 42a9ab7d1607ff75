//! SQL text and its bound parameters, written from a query set. Identifiers come from the
//! model (quoted by the derive); every value becomes `$n`.

use tokio_postgres::types::ToSql;

use crate::model::{ModelMeta, Node, Param};

/// A statement being written: its text and its parameters, `$1` first.
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) params: Vec<Param>,
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

    /// Writes column `index` of `meta`, qualified by `alias` when given.
    pub(crate) fn column(
        &mut self,
        meta: &ModelMeta,
        alias: Option<&str>,
        index: usize,
    ) -> &mut Sql {
        if let Some(alias) = alias {
            self.text.push_str(alias);
            self.text.push('.');
        }
        self.text.push_str(meta.quoted_columns[index]);
        self
    }

    /// Writes every column of `meta`, qualified by `alias`.
    pub(crate) fn select_list(&mut self, meta: &ModelMeta, alias: Option<&str>) -> &mut Sql {
        match alias {
            None => self.push(meta.select),
            Some(_) => {
                for i in 0..meta.quoted_columns.len() {
                    if i > 0 {
                        self.text.push_str(", ");
                    }
                    self.column(meta, alias, i);
                }
                self
            }
        }
    }

    /// Writes ` WHERE a AND b …` for `filters` (nothing when there is none).
    pub(crate) fn filters(
        &mut self,
        meta: &ModelMeta,
        alias: Option<&str>,
        filters: &[Node],
    ) -> &mut Sql {
        for (i, node) in filters.iter().enumerate() {
            self.push(if i == 0 { " WHERE " } else { " AND " });
            self.node(meta, alias, node, filters.len() > 1);
        }
        self
    }

    /// Writes one condition; `nested` adds parentheses where precedence needs them.
    pub(crate) fn node(
        &mut self,
        meta: &ModelMeta,
        alias: Option<&str>,
        node: &Node,
        nested: bool,
    ) {
        match node {
            Node::Compare { column, op, value } => {
                self.column(meta, alias, *column);
                self.text.push(' ');
                self.text.push_str(op);
                self.text.push(' ');
                self.bind(value.clone());
            }
            Node::Any { column, values } => {
                self.column(meta, alias, *column);
                self.push(" = ANY(");
                self.bind(values.clone());
                self.push(")");
            }
            Node::Null { column, negated } => {
                self.column(meta, alias, *column);
                self.push(if *negated { " IS NOT NULL" } else { " IS NULL" });
            }
            Node::And(all) => self.join(meta, alias, all, " AND ", nested),
            Node::Or(any) => self.join(meta, alias, any, " OR ", nested),
            Node::Not(inner) => {
                self.push("NOT (");
                self.node(meta, alias, inner, false);
                self.push(")");
            }
        }
    }

    fn join(
        &mut self,
        meta: &ModelMeta,
        alias: Option<&str>,
        nodes: &[Node],
        sep: &str,
        nested: bool,
    ) {
        if nested {
            self.push("(");
        }
        for (i, node) in nodes.iter().enumerate() {
            if i > 0 {
                self.push(sep);
            }
            self.node(meta, alias, node, true);
        }
        if nested {
            self.push(")");
        }
    }

    /// Writes ` ORDER BY …`.
    pub(crate) fn order(
        &mut self,
        meta: &ModelMeta,
        alias: Option<&str>,
        order: &[(usize, bool)],
    ) -> &mut Sql {
        for (i, &(column, desc)) in order.iter().enumerate() {
            self.push(if i == 0 { " ORDER BY " } else { ", " });
            self.column(meta, alias, column);
            if desc {
                self.push(" DESC");
            }
        }
        self
    }

    /// Writes ` LIMIT $n` / ` OFFSET $n` with the values bound; `most` (the ORM's own 1 or 2
    /// of `first` and `get`, never a caller's value) is written as a literal when the caller
    /// set no lower limit, so that a primary-key read binds one parameter, not two.
    pub(crate) fn slice(
        &mut self,
        limit: Option<i64>,
        most: Option<u8>,
        offset: Option<i64>,
    ) -> &mut Sql {
        match (limit, most) {
            (Some(l), Some(m)) if l <= i64::from(m) => {
                self.push(" LIMIT ");
                self.bind(Param::I64(l));
            }
            (_, Some(m)) => {
                self.push(" LIMIT ");
                self.push(itoa::Buffer::new().format(m));
            }
            (Some(l), None) => {
                self.push(" LIMIT ");
                self.bind(Param::I64(l));
            }
            (None, None) => {}
        }
        if let Some(offset) = offset {
            self.push(" OFFSET ");
            self.bind(Param::I64(offset));
        }
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
