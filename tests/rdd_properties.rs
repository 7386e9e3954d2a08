//! Property tests of every public `Rdd` operation against a plain sequential model.
//!
//! The library splits data into partitions, runs them in parallel and shuffles by hash,
//! so a bug tends to show only for some sizes, partition counts or key collisions. Each
//! property draws random data (small key domains, so keys repeat) and random partition
//! counts, and compares the parallel result with ordinary `Vec`/`BTreeMap` code.
//! Narrow operations and actions keep partition order, so their results are compared
//! as exact sequences; shuffles place keys by hash, so theirs are compared as sorted
//! multisets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use dstream::{Data, HashPartitioner, Partitioner, Rdd};
use proptest::collection::vec;
use proptest::prelude::*;

/// Pairs with keys from a domain of ten, so most keys repeat.
fn pairs() -> impl Strategy<Value = Vec<(u8, i32)>> {
    vec((0u8..10, -1000i32..1000), 0..200)
}

/// The other side of joins: the same key domain, values of another type.
fn right_pairs() -> impl Strategy<Value = Vec<(u8, char)>> {
    vec((0u8..10, proptest::char::range('a', 'z')), 0..200)
}

/// Short words from a domain of thirteen (the empty word included).
fn words() -> impl Strategy<Value = Vec<String>> {
    vec("[a-c]{0,2}", 0..200)
}

/// Plain elements, small enough that sums of 200 of them cannot overflow.
fn ints() -> impl Strategy<Value = Vec<i64>> {
    vec(-1000i64..1000, 0..200)
}

fn partition_counts() -> impl Strategy<Value = usize> {
    1usize..8
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

/// The number of partitions a shuffle without an explicit count produces: the
/// thread count of the pool `Rdd::from_vec` runs on.
fn default_partitions() -> usize {
    rayon::current_num_threads()
}

/// Checks a shuffle with the default partitioning and with `partitioned(n)`
/// against the same model, as multisets.
fn check_shuffle<T: Data + Ord + Debug>(
    default: Rdd<T>,
    explicit: Rdd<T>,
    n: usize,
    expected: Vec<T>,
) -> Result<(), TestCaseError> {
    let expected = sorted(expected);
    prop_assert_eq!(default.num_partitions(), default_partitions());
    prop_assert_eq!(sorted(default.collect()), expected.clone());
    prop_assert_eq!(explicit.num_partitions(), n);
    prop_assert_eq!(sorted(explicit.collect()), expected);
    Ok(())
}

/// Whether the partition sizes differ by at most one.
fn balanced<T>(parts: &[Vec<T>]) -> bool {
    let sizes = parts.iter().map(Vec::len);
    sizes
        .clone()
        .max()
        .zip(sizes.min())
        .is_some_and(|(max, min)| max - min <= 1)
}

/// For every key, its values in input order.
fn groups<K: Ord + Clone, V: Clone>(data: &[(K, V)]) -> BTreeMap<K, Vec<V>> {
    let mut groups: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (k, v) in data {
        groups.entry(k.clone()).or_default().push(v.clone());
    }
    groups
}

/// The model of a left outer join, which the full outer join model extends.
fn left_outer_model(left: &[(u8, i32)], right: &[(u8, char)]) -> Vec<(u8, (i32, Option<char>))> {
    let mut out = Vec::new();
    for &(k, v) in left {
        let matches: Vec<char> = right.iter().filter(|r| r.0 == k).map(|r| r.1).collect();
        if matches.is_empty() {
            out.push((k, (v, None)));
        }
        out.extend(matches.into_iter().map(|w| (k, (v, Some(w)))));
    }
    out
}

/// A key's values on the left and on the right of a cogroup.
type Groups = (Vec<i32>, Vec<char>);

/// A partitioner whose answers are mostly out of range, to check they are wrapped.
struct Scaled(usize);

impl Partitioner<u8> for Scaled {
    fn num_partitions(&self) -> usize {
        self.0
    }

    fn partition(&self, key: &u8) -> usize {
        usize::from(*key) * 7
    }
}

proptest! {
    #[test]
    fn cartesian_pairs_every_element_with_every_other_partition_by_partition(
        left in vec(0u8..50, 0..20),
        right in vec(-5i32..5, 0..20),
        m in partition_counts(),
        n in partition_counts(),
    ) {
        let a = Rdd::from_vec(left, m);
        let b = Rdd::from_vec(right, n);
        let pairs = a.cartesian(&b);
        prop_assert_eq!(pairs.num_partitions(), m * n);
        // Spark's order: partition (i, j) is partition i of the left crossed with
        // partition j of the right, row by row.
        let mut expected = Vec::new();
        for left_part in a.glom().collect() {
            for right_part in b.glom().collect() {
                for x in &left_part {
                    for y in &right_part {
                        expected.push((*x, *y));
                    }
                }
            }
        }
        prop_assert_eq!(pairs.collect(), expected);
    }

    #[test]
    fn from_partitions_keeps_the_partitions_given(
        parts in vec(vec(any::<i16>(), 0..10), 1..6),
    ) {
        let rdd = Rdd::from_partitions(parts.clone());
        prop_assert_eq!(rdd.num_partitions(), parts.len());
        prop_assert_eq!(rdd.glom().collect(), parts);
    }

    #[test]
    fn map_applies_to_every_element_in_order(data in ints(), m in partition_counts()) {
        let out = Rdd::from_vec(data.clone(), m).map(|x| x * 3 - 1).collect();
        prop_assert_eq!(out, data.iter().map(|x| x * 3 - 1).collect::<Vec<_>>());
    }

    #[test]
    fn flat_map_flattens_in_order(data in ints(), m in partition_counts()) {
        let copies = |x: i64| vec![x; x.rem_euclid(3) as usize];
        let out = Rdd::from_vec(data.clone(), m).flat_map(copies).collect();
        prop_assert_eq!(out, data.into_iter().flat_map(copies).collect::<Vec<_>>());
    }

    #[test]
    fn flat_map_into_equals_flat_map(data in ints(), m in partition_counts()) {
        let copies = |x: i64| vec![x; x.rem_euclid(3) as usize];
        let out = Rdd::from_vec(data.clone(), m)
            .flat_map_into(move |x, out| out.extend(copies(*x)))
            .collect();
        prop_assert_eq!(out, data.into_iter().flat_map(copies).collect::<Vec<_>>());
    }

    #[test]
    fn filter_keeps_matching_elements_in_order(data in ints(), m in partition_counts()) {
        let out = Rdd::from_vec(data.clone(), m).filter(|x| x % 3 == 0).collect();
        prop_assert_eq!(out, data.into_iter().filter(|x| x % 3 == 0).collect::<Vec<_>>());
    }

    #[test]
    fn map_partitions_sees_whole_partitions(data in ints(), m in partition_counts()) {
        let rdd = Rdd::from_vec(data, m);
        // Running sums restart at every partition, so a wrong boundary shows.
        let out = rdd
            .map_partitions(|it| {
                it.scan(0i64, |acc, x| {
                    *acc += x;
                    Some(*acc)
                })
            })
            .collect();
        let expected: Vec<i64> = rdd
            .glom()
            .collect()
            .into_iter()
            .flat_map(|part| {
                part.into_iter().scan(0i64, |acc, x| {
                    *acc += x;
                    Some(*acc)
                })
            })
            .collect();
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn map_partitions_with_index_gets_each_partition_index(
        data in ints(),
        m in partition_counts(),
    ) {
        let rdd = Rdd::from_vec(data, m);
        let out = rdd.map_partitions_with_index(|i, it| it.map(move |x| (i, x))).collect();
        let expected: Vec<(usize, i64)> = rdd
            .glom()
            .collect()
            .into_iter()
            .enumerate()
            .flat_map(|(i, part)| part.into_iter().map(move |x| (i, x)))
            .collect();
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn glom_splits_into_contiguous_balanced_partitions(data in ints(), m in 0usize..8) {
        let parts = Rdd::from_vec(data.clone(), m).glom().collect();
        prop_assert_eq!(parts.len(), m.max(1));
        prop_assert_eq!(parts.concat(), data);
        prop_assert!(balanced(&parts), "unbalanced partitions {:?}", parts);
    }

    #[test]
    fn union_concatenates_elements_and_partitions(
        a in ints(),
        b in ints(),
        ma in partition_counts(),
        mb in partition_counts(),
    ) {
        let (left, right) = (Rdd::from_vec(a.clone(), ma), Rdd::from_vec(b.clone(), mb));
        let both = left.union(&right);
        prop_assert_eq!(both.num_partitions(), ma + mb);
        prop_assert_eq!(both.collect(), [a, b].concat());
        let parts = [left.glom().collect(), right.glom().collect()].concat();
        prop_assert_eq!(both.glom().collect(), parts);
    }

    #[test]
    fn map_values_keeps_keys_in_order(data in pairs(), m in partition_counts()) {
        let out = Rdd::from_vec(data.clone(), m).map_values(|v| i64::from(v) * 2).collect();
        let expected: Vec<(u8, i64)> =
            data.into_iter().map(|(k, v)| (k, i64::from(v) * 2)).collect();
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn flat_map_values_pairs_each_result_with_its_key(data in pairs(), m in partition_counts()) {
        let below = |v: i32| 0..v.rem_euclid(4);
        let out = Rdd::from_vec(data.clone(), m).flat_map_values(below).collect();
        let expected: Vec<(u8, i32)> = data
            .into_iter()
            .flat_map(|(k, v)| below(v).map(move |u| (k, u)))
            .collect();
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn keys_are_the_first_components_in_order(data in pairs(), m in partition_counts()) {
        let out = Rdd::from_vec(data.clone(), m).keys().collect();
        prop_assert_eq!(out, data.into_iter().map(|(k, _)| k).collect::<Vec<_>>());
    }

    #[test]
    fn values_are_the_second_components_in_order(data in pairs(), m in partition_counts()) {
        let out = Rdd::from_vec(data.clone(), m).values().collect();
        prop_assert_eq!(out, data.into_iter().map(|(_, v)| v).collect::<Vec<_>>());
    }

    #[test]
    fn reduce_by_key_sums_each_key(
        data in pairs(),
        m in partition_counts(),
        n in partition_counts(),
    ) {
        let rdd = Rdd::from_vec(data.clone(), m);
        let expected: Vec<(u8, i32)> = groups(&data)
            .into_iter()
            .map(|(k, vs)| (k, vs.into_iter().sum()))
            .collect();
        check_shuffle(
            rdd.reduce_by_key(|a, b| a + b),
            rdd.partitioned(n).reduce_by_key(|a, b| a + b),
            n,
            expected,
        )?;
    }

    #[test]
    fn group_by_key_collects_all_values_of_each_key_in_arrival_order(
        data in vec(("[a-c]{0,2}", -1000i32..1000), 0..200),
        m in partition_counts(),
        n in partition_counts(),
    ) {
        let rdd = Rdd::from_vec(data.clone(), m);
        check_shuffle(
            rdd.group_by_key(),
            rdd.partitioned(n).group_by_key(),
            n,
            groups(&data).into_iter().collect(),
        )?;
    }

    #[test]
    fn combine_by_key_builds_sum_and_count(
        data in pairs(),
        m in partition_counts(),
        n in partition_counts(),
    ) {
        let rdd = Rdd::from_vec(data.clone(), m);
        let create = |v: i32| (i64::from(v), 1u32);
        let merge_value = |(s, c): (i64, u32), v: i32| (s + i64::from(v), c + 1);
        let merge_combiners = |(s1, c1): (i64, u32), (s2, c2): (i64, u32)| (s1 + s2, c1 + c2);
        let expected: Vec<(u8, (i64, u32))> = groups(&data)
            .into_iter()
            .map(|(k, vs)| (k, (vs.iter().copied().map(i64::from).sum(), vs.len() as u32)))
            .collect();
        check_shuffle(
            rdd.combine_by_key(create, merge_value, merge_combiners),
            rdd.partitioned(n).combine_by_key(create, merge_value, merge_combiners),
            n,
            expected,
        )?;
    }

    #[test]
    fn fold_by_key_with_identity_zero_matches_model(
        data in pairs(),
        m in partition_counts(),
        n in partition_counts(),
    ) {
        // The zero is applied once per key per input partition (as in Spark), so only
        // an identity zero gives a result independent of the partitioning.
        let rdd = Rdd::from_vec(data.clone(), m);
        let by_key = groups(&data);
        let sums: Vec<(u8, i32)> = by_key.iter().map(|(k, vs)| (*k, vs.iter().sum())).collect();
        check_shuffle(
            rdd.fold_by_key(0, |a, b| a + b),
            rdd.partitioned(n).fold_by_key(0, |a, b| a + b),
            n,
            sums,
        )?;
        let maxima: Vec<(u8, i32)> = by_key
            .iter()
            .map(|(k, vs)| (*k, vs.iter().copied().max().unwrap_or(i32::MIN)))
            .collect();
        check_shuffle(
            rdd.fold_by_key(i32::MIN, i32::max),
            rdd.partitioned(n).fold_by_key(i32::MIN, i32::max),
            n,
            maxima,
        )?;
    }

    #[test]
    fn count_by_value_counts_occurrences(
        data in words(),
        m in partition_counts(),
        n in partition_counts(),
    ) {
        let rdd = Rdd::from_vec(data.clone(), m);
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for word in data {
            *counts.entry(word).or_default() += 1;
        }
        check_shuffle(
            rdd.count_by_value(),
            rdd.partitioned(n).count_by_value(),
            n,
            counts.into_iter().collect(),
        )?;
    }

    #[test]
    fn distinct_keeps_each_element_once(
        data in words(),
        m in partition_counts(),
        n in partition_counts(),
    ) {
        let rdd = Rdd::from_vec(data.clone(), m);
        let expected: Vec<String> = data.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
        check_shuffle(rdd.distinct(), rdd.partitioned(n).distinct(), n, expected)?;
    }

    #[test]
    fn repartition_keeps_elements_and_balances_one_input(
        data in ints(),
        m in partition_counts(),
        n in 0usize..8,
    ) {
        let spread = Rdd::from_vec(data.clone(), m).repartition(n);
        prop_assert_eq!(spread.num_partitions(), n.max(1));
        prop_assert_eq!(sorted(spread.collect()), sorted(data.clone()));

        // Round robin from a single input partition fills outputs evenly.
        let parts = Rdd::from_vec(data.clone(), 1).repartition(n).glom().collect();
        prop_assert_eq!(parts.len(), n.max(1));
        prop_assert!(balanced(&parts), "unbalanced partitions {:?}", parts);
        prop_assert_eq!(sorted(parts.concat()), sorted(data));
    }

    #[test]
    fn partition_by_places_each_pair_in_its_key_partition(
        data in pairs(),
        m in partition_counts(),
        n in partition_counts(),
    ) {
        let partitioner = HashPartitioner::new(n);
        let moved = Rdd::from_vec(data.clone(), m).partition_by(partitioner);
        prop_assert_eq!(moved.num_partitions(), n);
        let parts = moved.glom().collect();
        prop_assert_eq!(parts.len(), n);
        for (index, part) in parts.iter().enumerate() {
            for (key, _) in part {
                prop_assert_eq!(partitioner.partition(key), index);
            }
        }
        prop_assert_eq!(sorted(parts.concat()), sorted(data));
    }

    #[test]
    fn partition_by_wraps_out_of_range_partitions(
        data in pairs(),
        m in partition_counts(),
        n in partition_counts(),
    ) {
        let parts = Rdd::from_vec(data.clone(), m).partition_by(Scaled(n)).glom().collect();
        prop_assert_eq!(parts.len(), n);
        for (index, part) in parts.iter().enumerate() {
            for (key, _) in part {
                prop_assert_eq!(usize::from(*key) * 7 % n, index);
            }
        }
        prop_assert_eq!(sorted(parts.concat()), sorted(data));
    }

    #[test]
    fn keyed_operations_place_keys_where_a_custom_partitioner_says(
        left in pairs(),
        right in right_pairs(),
        ml in partition_counts(),
        mr in partition_counts(),
        n in partition_counts(),
    ) {
        let (a, b) = (Rdd::from_vec(left.clone(), ml), Rdd::from_vec(right.clone(), mr));
        let scaled = a.partitioned(Scaled(n));
        let in_place = |key: u8| usize::from(key) * 7 % n;

        let mut sums: Vec<Vec<(u8, i32)>> = vec![Vec::new(); n];
        for (k, vs) in groups(&left) {
            sums[in_place(k)].push((k, vs.into_iter().sum()));
        }
        let parts: Vec<Vec<(u8, i32)>> =
            scaled.reduce_by_key(|x, y| x + y).glom().collect().into_iter().map(sorted).collect();
        prop_assert_eq!(parts, sums);

        let mut model: BTreeMap<u8, (Vec<i32>, Vec<char>)> = BTreeMap::new();
        for &(k, v) in &left {
            model.entry(k).or_default().0.push(v);
        }
        for &(k, w) in &right {
            model.entry(k).or_default().1.push(w);
        }
        let mut cogrouped: Vec<Vec<(u8, Groups)>> = vec![Vec::new(); n];
        for (k, (vs, ws)) in model {
            cogrouped[in_place(k)].push((k, (sorted(vs), sorted(ws))));
        }
        let parts: Vec<Vec<_>> = scaled
            .cogroup(&b)
            .map(|(k, (vs, ws))| (k, (sorted(vs), sorted(ws))))
            .glom()
            .collect()
            .into_iter()
            .map(sorted)
            .collect();
        prop_assert_eq!(parts, cogrouped);
    }

    #[test]
    fn join_pairs_matching_values(
        left in pairs(),
        right in right_pairs(),
        ml in partition_counts(),
        mr in partition_counts(),
        n in partition_counts(),
    ) {
        let (a, b) = (Rdd::from_vec(left.clone(), ml), Rdd::from_vec(right.clone(), mr));
        let mut expected = Vec::new();
        for &(k, v) in &left {
            for &(j, w) in &right {
                if k == j {
                    expected.push((k, (v, w)));
                }
            }
        }
        check_shuffle(a.join(&b), a.partitioned(n).join(&b), n, expected)?;
    }

    #[test]
    fn left_outer_join_keeps_unmatched_left_values(
        left in pairs(),
        right in right_pairs(),
        ml in partition_counts(),
        mr in partition_counts(),
        n in partition_counts(),
    ) {
        let (a, b) = (Rdd::from_vec(left.clone(), ml), Rdd::from_vec(right.clone(), mr));
        check_shuffle(
            a.left_outer_join(&b),
            a.partitioned(n).left_outer_join(&b),
            n,
            left_outer_model(&left, &right),
        )?;
    }

    #[test]
    fn right_outer_join_keeps_unmatched_right_values(
        left in pairs(),
        right in right_pairs(),
        ml in partition_counts(),
        mr in partition_counts(),
        n in partition_counts(),
    ) {
        let (a, b) = (Rdd::from_vec(left.clone(), ml), Rdd::from_vec(right.clone(), mr));
        let mut expected = Vec::new();
        for &(k, w) in &right {
            let matches: Vec<i32> = left.iter().filter(|l| l.0 == k).map(|l| l.1).collect();
            if matches.is_empty() {
                expected.push((k, (None, w)));
            }
            expected.extend(matches.into_iter().map(|v| (k, (Some(v), w))));
        }
        check_shuffle(
            a.right_outer_join(&b),
            a.partitioned(n).right_outer_join(&b),
            n,
            expected,
        )?;
    }

    #[test]
    fn full_outer_join_keeps_unmatched_values_of_both_sides(
        left in pairs(),
        right in right_pairs(),
        ml in partition_counts(),
        mr in partition_counts(),
        n in partition_counts(),
    ) {
        let (a, b) = (Rdd::from_vec(left.clone(), ml), Rdd::from_vec(right.clone(), mr));
        let mut expected: Vec<_> = left_outer_model(&left, &right)
            .into_iter()
            .map(|(k, (v, w))| (k, (Some(v), w)))
            .collect();
        for &(k, w) in &right {
            if !left.iter().any(|l| l.0 == k) {
                expected.push((k, (None, Some(w))));
            }
        }
        check_shuffle(
            a.full_outer_join(&b),
            a.partitioned(n).full_outer_join(&b),
            n,
            expected,
        )?;
    }

    #[test]
    fn cogroup_groups_both_sides_by_key(
        left in pairs(),
        right in right_pairs(),
        ml in partition_counts(),
        mr in partition_counts(),
        n in partition_counts(),
    ) {
        let (a, b) = (Rdd::from_vec(left.clone(), ml), Rdd::from_vec(right.clone(), mr));
        let mut model: BTreeMap<u8, (Vec<i32>, Vec<char>)> = BTreeMap::new();
        for &(k, v) in &left {
            model.entry(k).or_default().0.push(v);
        }
        for &(k, w) in &right {
            model.entry(k).or_default().1.push(w);
        }
        let sort_sides =
            |(k, (vs, ws)): (u8, (Vec<i32>, Vec<char>))| (k, (sorted(vs), sorted(ws)));
        check_shuffle(
            a.cogroup(&b).map(sort_sides),
            a.partitioned(n).cogroup(&b).map(sort_sides),
            n,
            model.into_iter().map(sort_sides).collect(),
        )?;
    }

    #[test]
    fn sort_by_key_orders_keys_across_partitions(
        data in pairs(),
        m in partition_counts(),
        n in partition_counts(),
        ascending in any::<bool>(),
    ) {
        let rdd = Rdd::from_vec(data.clone(), m);
        let expected_keys = {
            let keys = sorted(data.iter().map(|(k, _)| *k).collect::<Vec<_>>());
            if ascending { keys } else { keys.into_iter().rev().collect() }
        };
        for (out, partitions) in [
            (rdd.sort_by_key(ascending), m),
            (rdd.partitioned(n).sort_by_key(ascending), n),
        ] {
            prop_assert_eq!(out.num_partitions(), partitions);
            let all = out.collect();
            prop_assert_eq!(all.iter().map(|(k, _)| *k).collect::<Vec<_>>(), expected_keys.clone());
            prop_assert_eq!(sorted(all), sorted(data.clone()));
        }
    }

    #[test]
    fn collect_returns_elements_in_partition_order(data in ints(), m in partition_counts()) {
        prop_assert_eq!(Rdd::from_vec(data.clone(), m).collect(), data);
    }

    #[test]
    fn count_counts_elements(data in ints(), m in partition_counts()) {
        let rdd = Rdd::from_vec(data.clone(), m);
        prop_assert_eq!(rdd.count(), data.len() as u64);
        let kept = data.iter().filter(|x| *x % 4 == 0).count();
        prop_assert_eq!(rdd.filter(|x| x % 4 == 0).count(), kept as u64);
    }

    #[test]
    fn first_is_the_first_element(data in ints(), m in partition_counts()) {
        // The filter can leave leading partitions empty, which `first` must skip.
        let rdd = Rdd::from_vec(data.clone(), m).filter(|x| x % 5 == 0);
        prop_assert_eq!(rdd.first(), data.into_iter().find(|x| x % 5 == 0));
    }

    #[test]
    fn take_returns_a_prefix(data in ints(), m in partition_counts(), k in 0usize..250) {
        let rdd = Rdd::from_vec(data.clone(), m).filter(|x| x % 2 == 0);
        let expected: Vec<i64> = data.into_iter().filter(|x| x % 2 == 0).take(k).collect();
        prop_assert_eq!(rdd.take(k), expected);
    }

    #[test]
    fn reduce_sums_or_is_none_when_empty(data in ints(), m in partition_counts()) {
        let rdd = Rdd::from_vec(data.clone(), m).filter(|x| x % 3 == 0);
        let expected = data.into_iter().filter(|x| x % 3 == 0).reduce(|a, b| a + b);
        prop_assert_eq!(rdd.reduce(|a, b| a + b), expected);
    }

    #[test]
    fn fold_with_identity_zero_sums(data in ints(), m in partition_counts()) {
        let rdd = Rdd::from_vec(data.clone(), m);
        prop_assert_eq!(rdd.fold(0, |a, b| a + b), data.iter().sum::<i64>());
    }

    #[test]
    fn foreach_visits_every_element_once(data in ints(), m in partition_counts()) {
        let sum = AtomicI64::new(0);
        Rdd::from_vec(data.clone(), m).foreach(|x| {
            sum.fetch_add(x, Ordering::Relaxed);
        });
        prop_assert_eq!(sum.into_inner(), data.iter().sum::<i64>());
    }

    #[test]
    fn foreach_partition_sees_every_partition_once(data in ints(), m in partition_counts()) {
        let (calls, elements) = (AtomicUsize::new(0), AtomicUsize::new(0));
        Rdd::from_vec(data.clone(), m).foreach_partition(|part| {
            calls.fetch_add(1, Ordering::Relaxed);
            elements.fetch_add(part.count(), Ordering::Relaxed);
        });
        prop_assert_eq!(calls.into_inner(), m);
        prop_assert_eq!(elements.into_inner(), data.len());
    }

    #[test]
    fn is_empty_matches_the_model(data in ints(), m in partition_counts()) {
        let rdd = Rdd::from_vec(data.clone(), m);
        prop_assert_eq!(rdd.is_empty(), data.is_empty());
        // A leading empty partition must not hide the elements after it.
        prop_assert_eq!(Rdd::empty().union(&rdd).is_empty(), data.is_empty());
        let big = rdd.filter(|x| *x > 900);
        prop_assert_eq!(big.is_empty(), !data.iter().any(|x| *x > 900));
    }

    #[test]
    fn collect_as_map_keeps_the_last_value_per_key(data in pairs(), m in partition_counts()) {
        let expected: HashMap<u8, i32> = data.iter().copied().collect();
        prop_assert_eq!(Rdd::from_vec(data, m).collect_as_map(), expected);
    }

    #[test]
    fn cache_computes_upstream_once(data in ints(), m in partition_counts()) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = calls.clone();
        let upstream = Rdd::from_vec(data.clone(), m).map(move |x| {
            seen.fetch_add(1, Ordering::Relaxed);
            x * 2
        });
        let cached = upstream.cache();
        let expected: Vec<i64> = data.iter().map(|x| x * 2).collect();
        prop_assert_eq!(cached.collect(), expected.clone());
        prop_assert_eq!(cached.count(), data.len() as u64);
        prop_assert_eq!(calls.load(Ordering::Relaxed), data.len());
        prop_assert_eq!(upstream.collect(), cached.collect());
    }
}
