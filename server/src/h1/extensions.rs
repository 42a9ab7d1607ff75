//! [`Extensions`]: values attached to a request by type, for the handler.

use std::any::{Any, TypeId};

/// A map from type to one value of it, attached to a [`Request`](crate::Request) by a
/// [`Layer`](crate::Layer) (the session, the signed-in user) and read by an extractor.
///
/// Written here rather than taken from `http::Extensions`, which requires `Send + Sync`
/// values: a request never leaves its worker thread, and what layers attach is per-thread
/// state (`Rc`, `RefCell`). Empty, it is one null pointer and allocates nothing.
#[derive(Default)]
pub struct Extensions {
    values: Option<Box<Values>>,
}

/// The attached values with their types; a handful at most, so a list beats a map.
type Values = Vec<(TypeId, Box<dyn Any>)>;

impl Extensions {
    /// No values.
    pub fn new() -> Extensions {
        Extensions::default()
    }

    /// Attaches `value`, returning the value of its type attached before, if any.
    pub fn insert<T: 'static>(&mut self, value: T) -> Option<T> {
        let values = self.values.get_or_insert_with(Default::default);
        let id = TypeId::of::<T>();
        let old = values
            .iter()
            .position(|(t, _)| *t == id)
            .map(|i| values.swap_remove(i).1);
        values.push((id, Box::new(value)));
        old.and_then(|b| b.downcast::<T>().ok()).map(|b| *b)
    }

    /// The value of type `T`, if one was attached.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.values
            .as_ref()?
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_ref::<T>())
    }

    /// The value of type `T`, to change it.
    pub fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        let id = TypeId::of::<T>();
        self.values
            .as_mut()?
            .iter_mut()
            .find(|(t, _)| *t == id)
            .and_then(|(_, v)| v.downcast_mut::<T>())
    }

    /// Takes the value of type `T` out.
    pub fn remove<T: 'static>(&mut self) -> Option<T> {
        let id = TypeId::of::<T>();
        let values = self.values.as_mut()?;
        let i = values.iter().position(|(t, _)| *t == id)?;
        values.swap_remove(i).1.downcast::<T>().ok().map(|b| *b)
    }
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.values.as_ref().map_or(0, |v| v.len());
        f.debug_struct("Extensions").field("values", &n).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn values_are_found_by_type_and_replaced() {
        let mut ext = Extensions::new();
        assert!(ext.get::<u32>().is_none());
        assert_eq!(ext.insert(7u32), None);
        assert_eq!(ext.insert(Rc::new("rc")), None);
        assert_eq!(ext.insert(8u32), Some(7));
        assert_eq!(ext.get::<u32>(), Some(&8));
        assert_eq!(ext.get::<Rc<&str>>().map(|r| **r), Some("rc"));
        *ext.get_mut::<u32>().expect("there") += 1;
        assert_eq!(ext.remove::<u32>(), Some(9));
        assert!(ext.get::<u32>().is_none());
        assert!(ext.get::<i64>().is_none());
    }
}
