//! Windows across a group: each key's state in its shard holds what every batch that
//! gave the key values reduced them to, for as long as that batch is in the window.
//!
//! A shard's batch reduces the values each key received and adds the result to the
//! key's window. At slide times it visits every key it holds: the batches that left
//! the window are dropped (with an inverse function, taken out of the running value
//! first, as Spark's incremental windows do), and each key's window value goes to the
//! stream. The batches in a window are the shard's own batches, so after a crash a
//! pair lands in the batch that applied it, exactly once (see [`super::shard`]); the
//! window it is counted in is the one of the batch that took it.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::shard::{ShardOperation, Visited};
use crate::dstream::Timeline;
use crate::time::Time;

/// One key's window in a shard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct KeyWindow<V> {
    /// What each batch that gave the key values reduced them to, in the order the
    /// batches came, while it is in the window.
    batches: Vec<(Time, V)>,
    /// With an inverse function, the window's value: the previous one, plus the
    /// batches entering, minus those leaving.
    running: Option<V>,
}

type Reduce<V> = Box<dyn Fn(V, V) -> V + Send + Sync>;
type Keep<K, V> = Box<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// The inverse function and which keys to keep, for an incremental window.
pub(super) struct Inverse<K, V> {
    pub(super) inverse: Reduce<V>,
    pub(super) keep: Keep<K, V>,
}

/// `reduce_by_key_and_window` in a shard, with or without an inverse function.
pub(super) struct WindowReduce<K, V> {
    pub(super) f: Reduce<V>,
    pub(super) inverse: Option<Inverse<K, V>>,
    pub(super) length: Duration,
    pub(super) slide: Duration,
    pub(super) timeline: Arc<Timeline>,
}

impl<K: Clone, V: Clone> WindowReduce<K, V> {
    fn is_slide_time(&self, time: Time) -> bool {
        self.timeline
            .zero()
            .is_some_and(|zero| time.is_multiple_of(self.slide, zero))
    }

    /// Drops the batches that are no longer in the window ending at `time`; says
    /// whether there were any.
    fn expire(&self, time: Time, window: &mut KeyWindow<V>) -> bool {
        let start = time - self.length;
        if window.batches.iter().all(|(batch, _)| *batch > start) {
            return false;
        }
        let (left, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut window.batches)
            .into_iter()
            .partition(|(batch, _)| *batch <= start);
        window.batches = kept;
        let left = left.into_iter().map(|(_, value)| value).reduce(&self.f);
        if let (Some(inverse), Some(running), Some(left)) =
            (&self.inverse, window.running.take(), left)
        {
            window.running = Some((inverse.inverse)(running, left));
        }
        true
    }

    /// Adds the key's window value to `out`; says whether the key stays.
    fn emit(&self, key: &K, window: &KeyWindow<V>, out: &mut Vec<(K, V)>) -> bool {
        let value = match &self.inverse {
            None => window
                .batches
                .iter()
                .map(|(_, value)| value.clone())
                .reduce(&self.f),
            Some(inverse) => window
                .running
                .clone()
                .filter(|value| (inverse.keep)(key, value)),
        };
        match value {
            Some(value) => {
                out.push((key.clone(), value));
                true
            }
            None => false,
        }
    }
}

impl<K, V> ShardOperation<K, V, KeyWindow<V>, (K, V)> for WindowReduce<K, V>
where
    K: Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    fn apply(
        &self,
        time: Time,
        key: &K,
        values: Vec<V>,
        state: Option<KeyWindow<V>>,
        out: &mut Vec<(K, V)>,
    ) -> Option<KeyWindow<V>> {
        let mut window = state.unwrap_or(KeyWindow {
            batches: Vec::new(),
            running: None,
        });
        let slide = self.is_slide_time(time);
        if slide {
            self.expire(time, &mut window);
        }
        if let Some(batch) = values.into_iter().reduce(&self.f) {
            if self.inverse.is_some() {
                window.running = Some(match window.running.take() {
                    Some(running) => (self.f)(running, batch.clone()),
                    None => batch.clone(),
                });
            }
            window.batches.push((time, batch));
        }
        if slide && !self.emit(key, &window, out) {
            return None;
        }
        Some(window)
    }

    fn visits_all(&self, time: Time) -> bool {
        self.is_slide_time(time)
    }

    fn visit(
        &self,
        time: Time,
        key: &K,
        window: &mut KeyWindow<V>,
        out: &mut Vec<(K, V)>,
    ) -> Visited {
        let changed = self.expire(time, window);
        if !self.emit(key, window, out) {
            Visited::Removed
        } else if changed {
            Visited::Changed
        } else {
            Visited::Unchanged
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn at(second: i64) -> Time {
        Time::from_millis(second * 1000)
    }

    fn window(
        length: u64,
        slide: u64,
        inverse: Option<Inverse<&'static str, i64>>,
    ) -> WindowReduce<&'static str, i64> {
        let timeline = Arc::new(Timeline::new(SECOND));
        timeline.start_at(at(1));
        WindowReduce {
            f: Box::new(|a, b| a + b),
            inverse,
            length: SECOND * u32::try_from(length).unwrap(),
            slide: SECOND * u32::try_from(slide).unwrap(),
            timeline,
        }
    }

    fn subtracting(keep: fn(&&'static str, &i64) -> bool) -> Option<Inverse<&'static str, i64>> {
        Some(Inverse {
            inverse: Box::new(|a, b| a - b),
            keep: Box::new(keep),
        })
    }

    /// Runs batches 1, 2, ... through `op` as a shard does, and gives what each batch
    /// emitted and how many keys were held after it.
    fn run(
        op: &WindowReduce<&'static str, i64>,
        batches: &[&[(&'static str, i64)]],
    ) -> Vec<(BTreeMap<&'static str, i64>, usize)> {
        let mut states: HashMap<&'static str, KeyWindow<i64>> = HashMap::new();
        let mut results = Vec::new();
        for (i, batch) in batches.iter().enumerate() {
            let time = at(i64::try_from(i).unwrap() + 1);
            let mut values: BTreeMap<&'static str, Vec<i64>> = BTreeMap::new();
            for (key, value) in *batch {
                values.entry(key).or_default().push(*value);
            }
            let mut out = Vec::new();
            if op.visits_all(time) {
                states.retain(|key, state| {
                    values.contains_key(key)
                        || op.visit(time, key, state, &mut out) != Visited::Removed
                });
            }
            for (key, list) in values {
                match op.apply(time, &key, list, states.remove(key), &mut out) {
                    Some(state) => states.insert(key, state),
                    None => states.remove(key),
                };
            }
            let emitted: BTreeMap<_, _> = out.into_iter().collect();
            results.push((emitted, states.len()));
        }
        results
    }

    fn emitted(results: &[(BTreeMap<&'static str, i64>, usize)]) -> Vec<Vec<(&'static str, i64)>> {
        results
            .iter()
            .map(|(out, _)| out.iter().map(|(k, v)| (*k, *v)).collect())
            .collect()
    }

    #[test]
    fn a_window_adds_up_the_batches_in_it_and_forgets_keys_that_left() {
        let op = window(3, 1, None);
        let results = run(
            &op,
            &[
                &[("a", 1), ("b", 5)],
                &[("a", 2)],
                &[],
                &[("a", 4), ("a", 8)],
                &[],
                &[],
                &[],
            ],
        );
        assert_eq!(
            emitted(&results),
            vec![
                vec![("a", 1), ("b", 5)],
                vec![("a", 3), ("b", 5)],
                vec![("a", 3), ("b", 5)],
                vec![("a", 14)],
                vec![("a", 12)],
                vec![("a", 12)],
                vec![],
            ]
        );
        let held: Vec<usize> = results.iter().map(|(_, held)| *held).collect();
        assert_eq!(held, vec![2, 2, 2, 1, 1, 1, 0]);
    }

    #[test]
    fn a_window_emits_only_at_its_slide_times_and_counts_every_batch_between() {
        let op = window(4, 2, None);
        let results = run(
            &op,
            &[
                &[("a", 1)],
                &[("a", 2)],
                &[("a", 4)],
                &[("a", 8)],
                &[("a", 16)],
                &[],
                &[],
            ],
        );
        assert_eq!(
            emitted(&results),
            vec![
                vec![],
                vec![("a", 3)],
                vec![],
                vec![("a", 15)],
                vec![],
                vec![("a", 28)],
                vec![],
            ]
        );
    }

    #[test]
    fn an_inverse_window_keeps_keys_at_their_value_unless_told_to_drop_them() {
        let batches: &[&[(&str, i64)]] = &[&[("a", 1), ("b", 5)], &[("a", 2)], &[], &[], &[]];
        let kept = run(&window(2, 1, subtracting(|_, _| true)), batches);
        assert_eq!(
            emitted(&kept),
            vec![
                vec![("a", 1), ("b", 5)],
                vec![("a", 3), ("b", 5)],
                vec![("a", 2), ("b", 0)],
                vec![("a", 0), ("b", 0)],
                vec![("a", 0), ("b", 0)],
            ]
        );
        let dropped = run(&window(2, 1, subtracting(|_, count| *count != 0)), batches);
        assert_eq!(
            emitted(&dropped),
            vec![
                vec![("a", 1), ("b", 5)],
                vec![("a", 3), ("b", 5)],
                vec![("a", 2)],
                vec![],
                vec![],
            ]
        );
        let held: Vec<usize> = dropped.iter().map(|(_, held)| *held).collect();
        assert_eq!(held, vec![2, 2, 1, 0, 0]);
    }

    const KEYS: [&str; 4] = ["a", "b", "c", "d"];

    /// What a window of `length` batches sliding by `slide` batches holds at each batch,
    /// by adding up the batches in it: the keys with values in the window, or (`all`)
    /// every key seen so far, with 0 where the window has none.
    fn summed(
        batches: &[Vec<(&'static str, i64)>],
        length: usize,
        slide: usize,
        all: bool,
    ) -> Vec<Vec<(&'static str, i64)>> {
        (1..=batches.len())
            .map(|t| {
                if t % slide != 0 {
                    return Vec::new();
                }
                let mut sums: BTreeMap<&'static str, i64> = BTreeMap::new();
                for (i, batch) in batches[..t].iter().enumerate() {
                    for (key, value) in batch {
                        let sum = sums.entry(key).or_insert(0);
                        if i + length >= t {
                            *sum += value;
                        }
                    }
                }
                sums.into_iter()
                    .filter(|(_, sum)| all || *sum != 0)
                    .collect()
            })
            .collect()
    }

    proptest::proptest! {
        /// Every form of the window holds what adding up its batches gives, at its
        /// slide times only.
        #[test]
        fn windows_hold_the_sum_of_the_batches_in_them(
            batches in proptest::collection::vec(
                proptest::collection::vec((0..KEYS.len(), 1i64..10), 0..5),
                1..30,
            ),
            length in 1u64..6,
            slide in 1u64..4,
        ) {
            let batches: Vec<Vec<(&'static str, i64)>> = batches
                .into_iter()
                .map(|batch| batch.into_iter().map(|(k, v)| (KEYS[k], v)).collect())
                .collect();
            let refs: Vec<&[(&'static str, i64)]> = batches.iter().map(Vec::as_slice).collect();
            let (l, s) = (usize::try_from(length).unwrap(), usize::try_from(slide).unwrap());
            let nonzero = summed(&batches, l, s, false);
            proptest::prop_assert_eq!(emitted(&run(&window(length, slide, None), &refs)), nonzero.clone());
            let dropping = window(length, slide, subtracting(|_, sum| *sum != 0));
            proptest::prop_assert_eq!(emitted(&run(&dropping, &refs)), nonzero);
            let keeping = window(length, slide, subtracting(|_, _| true));
            proptest::prop_assert_eq!(emitted(&run(&keeping, &refs)), summed(&batches, l, s, true));
        }
    }

    #[test]
    fn a_window_carried_over_from_another_owner_keeps_its_batches() {
        let op = window(3, 1, subtracting(|_, count| *count != 0));
        let mut out = Vec::new();
        let state = op.apply(at(1), &"a", vec![1, 1], None, &mut out).unwrap();
        let state = op
            .apply(at(2), &"a", vec![1], Some(state), &mut out)
            .unwrap();
        // The shard moves: its state comes back from the changelog, encoded.
        let bytes = crate::checkpoint::encode(&state).unwrap();
        let mut state: KeyWindow<i64> = crate::checkpoint::decode(&bytes).unwrap();
        out.clear();
        assert_eq!(
            op.visit(at(3), &"a", &mut state, &mut out),
            Visited::Unchanged
        );
        assert_eq!(
            op.visit(at(4), &"a", &mut state, &mut out),
            Visited::Changed
        );
        assert_eq!(
            op.visit(at(5), &"a", &mut state, &mut out),
            Visited::Removed
        );
        assert_eq!(out, vec![("a", 3), ("a", 1)]);
    }
}
