//! Typed columns and the expressions built from them: `World::ID.eq(5)`,
//! `Product::NAME.icontains("tea") & Product::PRICE.lt(10)`.
//!
//! Values are never written into SQL: each becomes a bound parameter (`$n`), and column
//! names come only from the model, quoted by the derive. An expression is typed by its model,
//! so a filter on another model's column does not compile.

use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

use tokio_postgres::types::ToSql;

use super::Model;

/// A value bound as a parameter: the common integers inline, anything else shared, so that
/// a query set clones cheaply and a primary-key filter allocates nothing for its value.
#[derive(Clone)]
pub(crate) enum Param {
    I32(i32),
    I64(i64),
    Shared(Rc<dyn ToSql + Sync>),
}

impl Param {
    /// `value` as a parameter.
    pub(crate) fn new<T: Value>(value: T) -> Param {
        let any: &dyn std::any::Any = &value;
        if let Some(&n) = any.downcast_ref::<i32>() {
            Param::I32(n)
        } else if let Some(&n) = any.downcast_ref::<i64>() {
            Param::I64(n)
        } else {
            Param::Shared(Rc::new(value))
        }
    }

    /// The value as tokio-postgres encodes it.
    pub(crate) fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::I32(n) => n,
            Param::I64(n) => n,
            Param::Shared(v) => &**v,
        }
    }
}

impl fmt::Debug for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_sql(), f)
    }
}

/// A type a column can hold and a filter can bind: anything tokio-postgres can encode.
pub trait Value: ToSql + Sync + 'static {}

impl<T: ToSql + Sync + 'static> Value for T {}

/// Column `index` of model `M`, holding a `T`; the derive makes one associated constant per
/// field (`World::RANDOM_NUMBER`).
pub struct Column<M, T> {
    index: usize,
    _types: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for Column<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T> Copy for Column<M, T> {}

impl<M: Model, T> fmt::Debug for Column<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", M::META.table, self.name())
    }
}

impl<M, T> Column<M, T> {
    /// The column at `index` in the model's field order (the derive calls this).
    #[doc(hidden)]
    pub const fn new(index: usize) -> Self {
        Column {
            index,
            _types: PhantomData,
        }
    }

    /// Its position among the model's columns.
    pub fn index(self) -> usize {
        self.index
    }
}

impl<M: Model, T> Column<M, T> {
    /// Its name in the table.
    pub fn name(self) -> &'static str {
        M::META.columns[self.index]
    }

    /// Ascending order on this column, for `order_by`.
    pub fn asc(self) -> Order<M> {
        Order::new(self.index, false)
    }

    /// Descending order on this column, for `order_by`.
    pub fn desc(self) -> Order<M> {
        Order::new(self.index, true)
    }

    /// `column IS NULL`.
    pub fn is_null(self) -> Expr<M> {
        Expr::new(Node::Null {
            column: self.index,
            negated: false,
        })
    }

    /// `column IS NOT NULL`.
    pub fn is_not_null(self) -> Expr<M> {
        Expr::new(Node::Null {
            column: self.index,
            negated: true,
        })
    }
}

impl<M: Model, T: Value> Column<M, T> {
    fn compare(self, op: &'static str, value: impl Into<T>) -> Expr<M> {
        Expr::new(Node::Compare {
            column: self.index,
            op,
            value: Param::new(value.into()),
        })
    }

    /// `column = value`.
    pub fn eq(self, value: impl Into<T>) -> Expr<M> {
        self.compare("=", value)
    }

    /// `column <> value`.
    pub fn ne(self, value: impl Into<T>) -> Expr<M> {
        self.compare("<>", value)
    }

    /// `column < value`.
    pub fn lt(self, value: impl Into<T>) -> Expr<M> {
        self.compare("<", value)
    }

    /// `column <= value`.
    pub fn le(self, value: impl Into<T>) -> Expr<M> {
        self.compare("<=", value)
    }

    /// `column > value`.
    pub fn gt(self, value: impl Into<T>) -> Expr<M> {
        self.compare(">", value)
    }

    /// `column >= value`.
    pub fn ge(self, value: impl Into<T>) -> Expr<M> {
        self.compare(">=", value)
    }

    /// `column = ANY($n)`, the values bound as one array: one statement whatever their
    /// number, so it is prepared once. No value matches no row.
    pub fn is_in<V: Into<T>>(self, values: impl IntoIterator<Item = V>) -> Expr<M> {
        let values: Vec<T> = values.into_iter().map(Into::into).collect();
        Expr::new(Node::Any {
            column: self.index,
            values: Param::new(values),
        })
    }

    /// `column = value`, for [`update`](crate::QuerySet::update).
    pub fn set(self, value: impl Into<T>) -> Assign<M> {
        Assign {
            column: self.index,
            value: Param::new(value.into()),
            _model: PhantomData,
        }
    }
}

/// Columns that hold text, for the pattern filters.
pub trait Text: Value {}

impl Text for String {}
impl Text for Option<String> {}

impl<M: Model, T: Text> Column<M, T> {
    fn pattern(self, op: &'static str, pattern: String) -> Expr<M> {
        Expr::new(Node::Compare {
            column: self.index,
            op,
            value: Param::new(pattern),
        })
    }

    /// `column LIKE pattern`: `%` and `_` in `pattern` are wildcards (`\` escapes them).
    pub fn like(self, pattern: impl Into<String>) -> Expr<M> {
        self.pattern("LIKE", pattern.into())
    }

    /// `column ILIKE pattern`: as [`like`](Self::like), ignoring case.
    pub fn ilike(self, pattern: impl Into<String>) -> Expr<M> {
        self.pattern("ILIKE", pattern.into())
    }

    /// Whether the column contains `text` (case-sensitive); `%`, `_` and `\` in `text` match
    /// themselves.
    pub fn contains(self, text: &str) -> Expr<M> {
        self.pattern("LIKE", format!("%{}%", escape_like(text)))
    }

    /// Whether the column contains `text`, ignoring case (a live search box); `%`, `_` and
    /// `\` in `text` match themselves.
    pub fn icontains(self, text: &str) -> Expr<M> {
        self.pattern("ILIKE", format!("%{}%", escape_like(text)))
    }

    /// Whether the column starts with `text`; `%`, `_` and `\` in `text` match themselves.
    pub fn starts_with(self, text: &str) -> Expr<M> {
        self.pattern("LIKE", format!("{}%", escape_like(text)))
    }
}

/// `text` with LIKE's wildcards and its escape character escaped (`\` is the default escape).
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A condition on rows of `M`: combine with `&`, `|` and `!` (or [`and`](Self::and),
/// [`or`](Self::or), [`not`](Self::not)).
pub struct Expr<M> {
    pub(crate) node: Node,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Expr<M> {
    fn clone(&self) -> Self {
        Expr::new(self.node.clone())
    }
}

impl<M> fmt::Debug for Expr<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&self.node).finish()
    }
}

impl<M> Expr<M> {
    pub(crate) fn new(node: Node) -> Self {
        Expr {
            node,
            _model: PhantomData,
        }
    }

    /// Both conditions.
    pub fn and(self, other: Expr<M>) -> Expr<M> {
        Expr::new(match self.node {
            Node::And(mut all) => {
                all.push(other.node);
                Node::And(all)
            }
            node => Node::And(vec![node, other.node]),
        })
    }

    /// Either condition.
    pub fn or(self, other: Expr<M>) -> Expr<M> {
        Expr::new(match self.node {
            Node::Or(mut any) => {
                any.push(other.node);
                Node::Or(any)
            }
            node => Node::Or(vec![node, other.node]),
        })
    }

    /// The opposite condition. (`NULL` compares as neither: `NOT (x = 1)` does not match a
    /// row whose `x` is NULL, as in SQL.)
    #[allow(
        clippy::should_implement_trait,
        reason = "`!expr` works too, through `Not`"
    )]
    pub fn not(self) -> Expr<M> {
        Expr::new(Node::Not(Box::new(self.node)))
    }
}

impl<M> std::ops::BitAnd for Expr<M> {
    type Output = Expr<M>;
    fn bitand(self, other: Expr<M>) -> Expr<M> {
        self.and(other)
    }
}

impl<M> std::ops::BitOr for Expr<M> {
    type Output = Expr<M>;
    fn bitor(self, other: Expr<M>) -> Expr<M> {
        self.or(other)
    }
}

impl<M> std::ops::Not for Expr<M> {
    type Output = Expr<M>;
    fn not(self) -> Expr<M> {
        Expr::not(self)
    }
}

/// The tree of an expression; columns are indices into the model's columns.
#[derive(Clone)]
pub(crate) enum Node {
    Compare {
        column: usize,
        op: &'static str,
        value: Param,
    },
    Any {
        column: usize,
        values: Param,
    },
    Null {
        column: usize,
        negated: bool,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Compare { column, op, value } => write!(f, "#{column} {op} {value:?}"),
            Node::Any { column, values } => write!(f, "#{column} = ANY({values:?})"),
            Node::Null { column, negated } => {
                write!(f, "#{column} IS {}NULL", if *negated { "NOT " } else { "" })
            }
            Node::And(all) => f.debug_tuple("And").field(all).finish(),
            Node::Or(any) => f.debug_tuple("Or").field(any).finish(),
            Node::Not(node) => f.debug_tuple("Not").field(node).finish(),
        }
    }
}

/// An ordering: [`Column::asc`] or [`Column::desc`].
pub struct Order<M> {
    pub(crate) column: usize,
    pub(crate) desc: bool,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Order<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Order<M> {}

impl<M> Order<M> {
    pub(crate) fn new(column: usize, desc: bool) -> Self {
        Order {
            column,
            desc,
            _model: PhantomData,
        }
    }
}

/// `column = value` in an `UPDATE`: [`Column::set`].
pub struct Assign<M> {
    pub(crate) column: usize,
    pub(crate) value: Param,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for Assign<M> {
    fn clone(&self) -> Self {
        Assign {
            column: self.column,
            value: self.value.clone(),
            _model: PhantomData,
        }
    }
}
