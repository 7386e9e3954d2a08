//! Joins across a group: both sides' pairs travel through one repartition topic, each
//! tagged with its side, so that a key's pairs of both sides meet in one shard and
//! one batch, whichever process read their records.

use serde::{Deserialize, Serialize};

/// A pair's value, tagged with the side of the join it belongs to.
#[derive(Serialize, Deserialize)]
pub(super) enum Side<V, W> {
    Left(V),
    Right(W),
}

/// The values of each side, in the order the shard received them.
pub(super) fn split<V, W>(values: Vec<Side<V, W>>) -> (Vec<V>, Vec<W>) {
    let mut left = Vec::new();
    let mut right = Vec::new();
    for value in values {
        match value {
            Side::Left(v) => left.push(v),
            Side::Right(w) => right.push(w),
        }
    }
    (left, right)
}

/// Every pairing of a left value with a right one, as a per-batch join has them;
/// a side without values pairs the other side's values with `None` where `outer`
/// says it may.
pub(super) fn pairings<V: Clone, W: Clone>(
    left: &[V],
    right: &[W],
    outer: (bool, bool),
    mut out: impl FnMut(Option<V>, Option<W>),
) {
    match (left.is_empty(), right.is_empty()) {
        (false, false) => {
            for v in left {
                for w in right {
                    out(Some(v.clone()), Some(w.clone()));
                }
            }
        }
        (false, true) if outer.0 => left.iter().for_each(|v| out(Some(v.clone()), None)),
        (true, false) if outer.1 => right.iter().for_each(|w| out(None, Some(w.clone()))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(left: &[i32], right: &[char], outer: (bool, bool)) -> Vec<(Option<i32>, Option<char>)> {
        let mut out = Vec::new();
        pairings(left, right, outer, |v, w| out.push((v, w)));
        out
    }

    #[test]
    fn sides_split_in_the_order_received() {
        let values = vec![Side::Left(1), Side::Right('x'), Side::Left(2)];
        assert_eq!(split(values), (vec![1, 2], vec!['x']));
    }

    #[test]
    fn pairings_are_the_cartesian_product_and_outer_sides_pair_with_none() {
        assert_eq!(
            all(&[1, 2], &['x', 'y'], (false, false)),
            vec![
                (Some(1), Some('x')),
                (Some(1), Some('y')),
                (Some(2), Some('x')),
                (Some(2), Some('y'))
            ]
        );
        assert_eq!(all(&[1, 2], &[], (false, true)), vec![]);
        assert_eq!(
            all(&[1, 2], &[], (true, false)),
            vec![(Some(1), None), (Some(2), None)]
        );
        assert_eq!(all(&[], &['x'], (true, false)), vec![]);
        assert_eq!(all(&[], &['x'], (false, true)), vec![(None, Some('x'))]);
        assert_eq!(all(&[1], &['x'], (true, true)), vec![(Some(1), Some('x'))]);
    }
}
