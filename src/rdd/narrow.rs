//! Narrow operations: each output partition depends on one parent partition, so a
//! chain of them runs as one fused pass per partition with no intermediate storage.
//!
//! All of them are one node, [`Narrow`]: a function from a parent partition's iterator
//! to the new partition's iterator. `union` is the one narrow operation with several
//! parents.

use std::sync::Arc;

use super::{Data, PartitionIter, Rdd, RddNode};

type PartitionFn<A, T> = dyn Fn(usize, PartitionIter<A>) -> PartitionIter<T> + Send + Sync;

/// A partition-wise transformation of one parent.
struct Narrow<A, T> {
    parent: Rdd<A>,
    f: Arc<PartitionFn<A, T>>,
}

impl<A: Data, T: Data> RddNode<T> for Narrow<A, T> {
    fn num_partitions(&self) -> usize {
        self.parent.num_partitions()
    }

    fn prepare(&self) {
        self.parent.prepare();
    }

    fn compute(&self, partition: usize) -> PartitionIter<T> {
        (self.f)(partition, self.parent.compute(partition))
    }
}

/// The partitions of several parents, one after the other.
struct Union<T> {
    parents: Vec<Rdd<T>>,
}

impl<T: Data> RddNode<T> for Union<T> {
    fn num_partitions(&self) -> usize {
        self.parents.iter().map(Rdd::num_partitions).sum()
    }

    fn prepare(&self) {
        for parent in &self.parents {
            parent.prepare();
        }
    }

    fn compute(&self, mut partition: usize) -> PartitionIter<T> {
        for parent in &self.parents {
            let n = parent.num_partitions();
            if partition < n {
                return parent.compute(partition);
            }
            partition -= n;
        }
        Box::new(std::iter::empty())
    }

    fn known_len(&self) -> Option<u64> {
        self.parents.iter().map(Rdd::known_len).sum()
    }
}

/// The iterator of [`Rdd::flat_map_into`]: one element's results at a time, kept in
/// reverse so that each is popped off the end in order.
struct FlatMapInto<T, U, F> {
    input: PartitionIter<T>,
    f: Arc<F>,
    pending: Vec<U>,
}

impl<T, U, F: Fn(&T, &mut Vec<U>)> Iterator for FlatMapInto<T, U, F> {
    type Item = U;

    fn next(&mut self) -> Option<U> {
        loop {
            if let Some(next) = self.pending.pop() {
                return Some(next);
            }
            let element = self.input.next()?;
            (self.f)(&element, &mut self.pending);
            self.pending.reverse();
        }
    }
}

impl<T: Data> Rdd<T> {
    /// Wraps this `Rdd` in a partition-wise transformation.
    pub(crate) fn narrow<U: Data>(
        &self,
        f: impl Fn(usize, PartitionIter<T>) -> PartitionIter<U> + Send + Sync + 'static,
    ) -> Rdd<U> {
        self.derive(Narrow {
            parent: self.clone(),
            f: Arc::new(f),
        })
    }

    /// Applies `f` to every element.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert_eq!(Rdd::from_vec(vec![1, 2, 3], 2).map(|x| x * 2).collect(), vec![2, 4, 6]);
    /// ```
    pub fn map<U: Data>(&self, f: impl Fn(T) -> U + Send + Sync + 'static) -> Rdd<U> {
        let f = Arc::new(f);
        self.narrow(move |_, iter| {
            let f = f.clone();
            Box::new(iter.map(move |x| f(x)))
        })
    }

    /// Applies `f` to every element and flattens the results.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let words = Rdd::from_vec(vec!["a b".to_string(), "c".to_string()], 2)
    ///     .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>());
    /// assert_eq!(words.collect(), vec!["a", "b", "c"]);
    /// ```
    pub fn flat_map<U: Data, I>(&self, f: impl Fn(T) -> I + Send + Sync + 'static) -> Rdd<U>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        let f = Arc::new(f);
        self.narrow(move |_, iter| {
            let f = f.clone();
            Box::new(iter.flat_map(move |x| f(x)))
        })
    }

    /// Applies `f` to every element, with a `Vec` to put its results in, and flattens
    /// them: a `flat_map` whose function may borrow the element while it produces, so
    /// that the word split needs no `collect` (and no `Vec`) per line. The `Vec` is
    /// reused from element to element.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let words = Rdd::from_vec(vec!["a b".to_string(), "c".to_string()], 2)
    ///     .flat_map_into(|line, words| words.extend(line.split(' ').map(String::from)));
    /// assert_eq!(words.collect(), vec!["a", "b", "c"]);
    /// ```
    pub fn flat_map_into<U: Data>(
        &self,
        f: impl Fn(&T, &mut Vec<U>) + Send + Sync + 'static,
    ) -> Rdd<U> {
        let f = Arc::new(f);
        self.narrow(move |_, input| {
            Box::new(FlatMapInto {
                input,
                f: f.clone(),
                pending: Vec::new(),
            })
        })
    }

    /// Keeps the elements for which `predicate` is true.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert_eq!(Rdd::from_vec((1..=6).collect(), 3).filter(|x| x % 2 == 0).collect(), vec![2, 4, 6]);
    /// ```
    pub fn filter(&self, predicate: impl Fn(&T) -> bool + Send + Sync + 'static) -> Rdd<T> {
        let predicate = Arc::new(predicate);
        self.narrow(move |_, iter| {
            let predicate = predicate.clone();
            Box::new(iter.filter(move |x| predicate(x)))
        })
    }

    /// Transforms each partition as a whole: `f` receives the partition's elements and
    /// returns the new partition's elements.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let sums = Rdd::from_vec((1..=6).collect(), 2).map_partitions(|it| Some(it.sum::<i32>()));
    /// assert_eq!(sums.collect(), vec![6, 15]);
    /// ```
    pub fn map_partitions<U: Data, I>(
        &self,
        f: impl Fn(PartitionIter<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        self.narrow(move |_, iter| Box::new(f(iter).into_iter()))
    }

    /// Like [`map_partitions`](Rdd::map_partitions), with the partition's index.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let tagged = Rdd::from_vec(vec!['a', 'b', 'c'], 2)
    ///     .map_partitions_with_index(|i, it| it.map(move |c| (i, c)));
    /// assert_eq!(tagged.collect(), vec![(0, 'a'), (0, 'b'), (1, 'c')]);
    /// ```
    pub fn map_partitions_with_index<U: Data, I>(
        &self,
        f: impl Fn(usize, PartitionIter<T>) -> I + Send + Sync + 'static,
    ) -> Rdd<U>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        self.narrow(move |index, iter| Box::new(f(index, iter).into_iter()))
    }

    /// Turns each partition into one element: the `Vec` of its elements.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert_eq!(Rdd::from_vec(vec![1, 2, 3], 2).glom().collect(), vec![vec![1, 2], vec![3]]);
    /// ```
    pub fn glom(&self) -> Rdd<Vec<T>> {
        self.narrow(|_, iter| Box::new(std::iter::once(iter.collect::<Vec<_>>())))
    }

    /// The elements of this `Rdd` followed by those of `other`; the partitions of both.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let both = Rdd::from_vec(vec![1, 2], 1).union(&Rdd::from_vec(vec![3], 1));
    /// assert_eq!((both.num_partitions(), both.collect()), (2, vec![1, 2, 3]));
    /// ```
    pub fn union(&self, other: &Rdd<T>) -> Rdd<T> {
        Rdd::union_all(self, std::slice::from_ref(other))
    }

    /// The union of `first` and every `Rdd` in `rest`, in order.
    pub(crate) fn union_all(first: &Rdd<T>, rest: &[Rdd<T>]) -> Rdd<T> {
        let parents = std::iter::once(first).chain(rest).cloned().collect();
        first.derive(Union { parents })
    }
}

impl<K: Data, V: Data> Rdd<(K, V)> {
    /// Applies `f` to every value, keeping the keys.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let rdd = Rdd::from_vec(vec![("a", 1), ("b", 2)], 1).map_values(|v| v * 10);
    /// assert_eq!(rdd.collect(), vec![("a", 10), ("b", 20)]);
    /// ```
    pub fn map_values<U: Data>(&self, f: impl Fn(V) -> U + Send + Sync + 'static) -> Rdd<(K, U)> {
        self.map(move |(k, v)| (k, f(v)))
    }

    /// Applies `f` to every value and pairs each result with the value's key.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let rdd = Rdd::from_vec(vec![("a", 2)], 1).flat_map_values(|n| 0..n);
    /// assert_eq!(rdd.collect(), vec![("a", 0), ("a", 1)]);
    /// ```
    pub fn flat_map_values<U: Data, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> Rdd<(K, U)>
    where
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: 'static,
    {
        let f = Arc::new(f);
        self.flat_map(move |(k, v)| f(v).into_iter().map(move |u| (k.clone(), u)))
    }

    /// The keys.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert_eq!(Rdd::from_vec(vec![("a", 1), ("b", 2)], 1).keys().collect(), vec!["a", "b"]);
    /// ```
    pub fn keys(&self) -> Rdd<K> {
        self.map(|(k, _)| k)
    }

    /// The values.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert_eq!(Rdd::from_vec(vec![("a", 1), ("b", 2)], 1).values().collect(), vec![1, 2]);
    /// ```
    pub fn values(&self) -> Rdd<V> {
        self.map(|(_, v)| v)
    }
}
