//! A value swapped by one writer while many readers use it: the serving certificate a TLS
//! listener presents, the signing CA the signer uses. Readers take an `Arc` of the current
//! value and keep it for as long as they need it; a swap never waits for them.

use std::sync::{Arc, RwLock, RwLockWriteGuard};

pub struct Slot<T> {
    current: RwLock<Option<Arc<T>>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            current: RwLock::new(None),
        }
    }
}

impl<T> Slot<T> {
    /// The current value, if one is set.
    pub fn get(&self) -> Option<Arc<T>> {
        match self.current.read() {
            Ok(c) => c.clone(),
            // A panicking writer cannot leave an Option<Arc> half-written.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, value: T) {
        *self.write() = Some(Arc::new(value));
    }

    pub fn clear(&self) {
        *self.write() = None;
    }

    fn write(&self) -> RwLockWriteGuard<'_, Option<Arc<T>>> {
        match self.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_keep_what_they_took() {
        let slot = Slot::default();
        assert!(slot.get().is_none());
        slot.set(1);
        let taken = slot.get().expect("set");
        slot.set(2);
        assert_eq!((*taken, slot.get().map(|v| *v)), (1, Some(2)));
        slot.clear();
        assert!(slot.get().is_none());
    }
}
