//! [`PerListener`]: what a collector reads for each listener at each
//! scrape, registered as the listeners start.

use std::sync::{Arc, Mutex, PoisonError};

/// A listener's name and its item.
type Entry<T> = (String, Arc<T>);

/// (listener name, item) pairs, in the order the listeners started. Clones
/// share them: one sits in the registered collector, another takes the
/// listeners' items as they start.
#[derive(Debug)]
pub(super) struct PerListener<T> {
    items: Arc<Mutex<Vec<Entry<T>>>>,
}

impl<T> Clone for PerListener<T> {
    fn clone(&self) -> Self {
        PerListener {
            items: Arc::clone(&self.items),
        }
    }
}

impl<T> Default for PerListener<T> {
    fn default() -> Self {
        PerListener {
            items: Arc::default(),
        }
    }
}

impl<T> PerListener<T> {
    /// Listener `name`'s item, made by `make` on first use.
    pub(super) fn get_or_add(&self, name: &str, make: impl FnOnce() -> T) -> Arc<T> {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, item)) = items.iter().find(|(n, _)| n == name) {
            return Arc::clone(item);
        }
        let item = Arc::new(make());
        items.push((name.to_owned(), Arc::clone(&item)));
        item
    }

    /// Makes `item` listener `name`'s (replacing its previous one, after
    /// a reload).
    pub(super) fn set(&self, name: &str, item: &Arc<T>) {
        let mut items = self.items.lock().unwrap_or_else(PoisonError::into_inner);
        match items.iter_mut().find(|(n, _)| n == name) {
            Some((_, old)) => *old = Arc::clone(item),
            None => items.push((name.to_owned(), Arc::clone(item))),
        }
    }

    /// Forgets the listeners not in `names` (removed by a reload).
    pub(super) fn retain(&self, names: &[&str]) {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(n, _)| names.contains(&n.as_str()));
    }

    /// Every (listener, item) now, for one scrape.
    pub(super) fn snapshot(&self) -> Vec<Entry<T>> {
        self.items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
