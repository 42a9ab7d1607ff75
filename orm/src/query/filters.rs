//! A query set's filters: most query sets have one (a primary-key read), which is kept
//! inline, so building one allocates nothing.

use crate::model::Node;

/// The conditions a query set's rows must all meet, in the order they were added.
#[derive(Clone, Default)]
pub(crate) enum Filters {
    #[default]
    None,
    One(Node),
    Many(Vec<Node>),
}

impl Filters {
    /// Adds `node` after the others.
    pub(crate) fn push(&mut self, node: Node) {
        *self = match std::mem::take(self) {
            Filters::None => Filters::One(node),
            Filters::One(first) => Filters::Many(vec![first, node]),
            Filters::Many(mut all) => {
                all.push(node);
                Filters::Many(all)
            }
        };
    }
}

impl std::ops::Deref for Filters {
    type Target = [Node];

    fn deref(&self) -> &[Node] {
        match self {
            Filters::None => &[],
            Filters::One(node) => std::slice::from_ref(node),
            Filters::Many(all) => all,
        }
    }
}
