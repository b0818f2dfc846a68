//! A list that is cheap to insert into near where it was last changed (a gap buffer). Gap filling
//! inserts each new frame next to the previous one, tens of thousands of times in a long segment:
//! in a plain `Vec` every insert moves the whole tail, which made planning quadratic.

/// Items in order, split at a cursor: `before` holds the items before it, `after` the rest in
/// reverse order. Inserting at the cursor is a push; moving the cursor moves the items it passes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Gapped<T> {
    before: Vec<T>,
    after: Vec<T>,
}

impl<T> Default for Gapped<T> {
    fn default() -> Self {
        Self::from(Vec::new())
    }
}

impl<T> From<Vec<T>> for Gapped<T> {
    fn from(items: Vec<T>) -> Self {
        Self {
            before: items,
            after: Vec::new(),
        }
    }
}

impl<T> Gapped<T> {
    /// How many items there are.
    pub(crate) fn len(&self) -> usize {
        self.before.len() + self.after.len()
    }

    /// The item at `index`, if there is one.
    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        match index.checked_sub(self.before.len()) {
            None => self.before.get(index),
            Some(i) => self
                .after
                .len()
                .checked_sub(i + 1)
                .and_then(|r| self.after.get(r)),
        }
    }

    /// Inserts `item` at `index` (at the end when `index` is past it).
    pub(crate) fn insert(&mut self, index: usize, item: T) {
        self.seek(index.min(self.len()));
        self.before.push(item);
    }

    /// Appends `item`.
    pub(crate) fn push(&mut self, item: T) {
        self.insert(self.len(), item);
    }

    /// The items in order.
    pub(crate) fn into_vec(mut self) -> Vec<T> {
        self.seek(self.len());
        self.before
    }

    /// Moves the cursor to `index` (at most the length).
    fn seek(&mut self, index: usize) {
        while self.before.len() > index {
            let Some(item) = self.before.pop() else { break };
            self.after.push(item);
        }
        while self.before.len() < index {
            let Some(item) = self.after.pop() else { break };
            self.before.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_anywhere_as_a_vec_does() {
        let mut gapped = Gapped::from(vec![0, 1, 2, 3]);
        let mut plain = vec![0, 1, 2, 3];
        // Near the cursor, far behind it, far ahead of it, past the end, at the very start.
        for (step, at) in [2, 3, 0, 6, 99, 1, 5, 0].into_iter().enumerate() {
            gapped.insert(at, 10 + step);
            plain.insert(at.min(plain.len()), 10 + step);
            assert_eq!(gapped.len(), plain.len());
            for i in 0..=plain.len() {
                assert_eq!(
                    gapped.get(i),
                    plain.get(i),
                    "item {i} after inserting at {at}"
                );
            }
        }
        gapped.push(99);
        plain.push(99);
        assert_eq!(gapped.into_vec(), plain);
    }

    #[test]
    fn empty() {
        let mut gapped: Gapped<u8> = Gapped::default();
        assert_eq!((gapped.len(), gapped.get(0)), (0, None));
        gapped.insert(3, 7);
        assert_eq!(gapped.into_vec(), vec![7]);
    }
}
