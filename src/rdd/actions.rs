//! Actions: operations that compute an `Rdd` and return a result.
//!
//! Each first runs the stages the `Rdd` depends on, then computes its partitions in
//! parallel on the `Rdd`'s pool. `take` and `first` compute partitions in order and stop
//! as soon as they have enough.

use std::collections::HashMap;

use rayon::prelude::*;

use super::{Data, Key, PartitionIter, Rdd};

impl<T: Data> Rdd<T> {
    /// All elements, partition by partition.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert_eq!(Rdd::from_vec(vec![1, 2, 3], 2).collect(), vec![1, 2, 3]);
    /// ```
    pub fn collect(&self) -> Vec<T> {
        self.compute_all().into_iter().flatten().collect()
    }

    /// The number of elements.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert_eq!(Rdd::from_vec(vec!['a', 'b'], 2).count(), 2);
    /// ```
    pub fn count(&self) -> u64 {
        self.env().run(|| {
            self.prepare();
            (0..self.num_partitions())
                .into_par_iter()
                .map(|p| self.compute(p).count() as u64)
                .sum()
        })
    }

    /// The first element, if any.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert_eq!(Rdd::from_vec(vec![7, 8], 2).first(), Some(7));
    /// assert_eq!(Rdd::<i32>::empty().first(), None);
    /// ```
    pub fn first(&self) -> Option<T> {
        self.take(1).pop()
    }

    /// The first `n` elements, in partition order.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert_eq!(Rdd::from_vec((1..=10).collect(), 4).take(3), vec![1, 2, 3]);
    /// ```
    pub fn take(&self, n: usize) -> Vec<T> {
        self.env().run(|| {
            self.prepare();
            let mut taken = Vec::with_capacity(n.min(1024));
            for p in 0..self.num_partitions() {
                if taken.len() >= n {
                    break;
                }
                taken.extend(self.compute(p).take(n - taken.len()));
            }
            taken
        })
    }

    /// Whether there are no elements.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert!(Rdd::from_vec(vec![1, 2], 2).filter(|x| *x > 5).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.take(1).is_empty()
    }

    /// Merges all elements with `f`, which should be associative and commutative;
    /// `None` when there are none.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert_eq!(Rdd::from_vec((1..=4).collect(), 3).reduce(|a, b| a + b), Some(10));
    /// assert_eq!(Rdd::<i32>::empty().reduce(|a, b| a + b), None);
    /// ```
    pub fn reduce(&self, f: impl Fn(T, T) -> T + Send + Sync) -> Option<T> {
        self.env().run(|| {
            self.prepare();
            (0..self.num_partitions())
                .into_par_iter()
                .filter_map(|p| self.compute(p).reduce(&f))
                .reduce_with(&f)
        })
    }

    /// Folds each partition from `zero` with `f`, then folds the partition results from
    /// `zero` again, as Spark's `fold`.
    ///
    /// ```
    /// use dstream::Rdd;
    /// assert_eq!(Rdd::from_vec((1..=4).collect(), 2).fold(0, |a, b| a + b), 10);
    /// ```
    pub fn fold(&self, zero: T, f: impl Fn(T, T) -> T + Send + Sync) -> T {
        let partials: Vec<T> = self.env().run(|| {
            self.prepare();
            (0..self.num_partitions())
                .into_par_iter()
                .map(|p| self.compute(p).fold(zero.clone(), &f))
                .collect()
        });
        partials.into_iter().fold(zero, &f)
    }

    /// Calls `f` on every element, in parallel.
    ///
    /// ```
    /// use dstream::Rdd;
    /// use std::sync::atomic::{AtomicI64, Ordering};
    /// let sum = AtomicI64::new(0);
    /// Rdd::from_vec(vec![1, 2, 3], 2).foreach(|x| { sum.fetch_add(x, Ordering::Relaxed); });
    /// assert_eq!(sum.into_inner(), 6);
    /// ```
    pub fn foreach(&self, f: impl Fn(T) + Send + Sync) {
        self.foreach_partition(|partition| partition.for_each(&f));
    }

    /// Calls `f` once per partition with the partition's elements, in parallel: the
    /// place to open one connection per partition rather than one per element.
    ///
    /// ```
    /// use dstream::Rdd;
    /// use std::sync::Mutex;
    /// let sizes = Mutex::new(Vec::new());
    /// Rdd::from_vec((0..5).collect::<Vec<i32>>(), 2)
    ///     .foreach_partition(|part| sizes.lock().unwrap().push(part.count()));
    /// let mut sizes = sizes.into_inner().unwrap();
    /// sizes.sort();
    /// assert_eq!(sizes, vec![2, 3]);
    /// ```
    pub fn foreach_partition(&self, f: impl Fn(PartitionIter<T>) + Send + Sync) {
        self.env().run(|| {
            self.prepare();
            (0..self.num_partitions())
                .into_par_iter()
                .for_each(|p| f(self.compute(p)));
        });
    }
}

impl<K: Data, V: Data> Rdd<(K, V)> {
    /// The pairs as a map; for a repeated key, the last value in partition order wins.
    ///
    /// ```
    /// use dstream::Rdd;
    /// let map = Rdd::from_vec(vec![("a", 1), ("b", 2)], 2).collect_as_map();
    /// assert_eq!(map["b"], 2);
    /// ```
    pub fn collect_as_map(&self) -> HashMap<K, V>
    where
        K: Key,
    {
        self.collect().into_iter().collect()
    }
}
