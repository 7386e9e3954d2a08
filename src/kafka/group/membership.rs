//! Group membership: one consumer per process, a member of the application's
//! consumer group, used for the assignment and for offset commits only. Every
//! partition it is assigned stays paused, so it never fetches a record; readers on
//! explicit offset ranges read the data, as the direct stream does.
//!
//! Rebalance callbacks run inside `poll`, which only the job generator calls, between
//! batches. A revocation waits until every batch already cut has completed and its
//! changelog records are written (the listener below writes them), and commits the
//! revoked input partitions' offsets: a partition is given up only after the batch
//! that read it is done.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::super::record::TopicPartition;
use super::writer::{Outgoing, Writer};
use crate::error::lock;
use crate::scheduler::{BatchInfo, ListenerBus, RebalanceInfo, StreamingListener};
use crate::time::Time;

/// How long a revocation waits between looks at whether the context stops.
const REVOKE_POLL: Duration = Duration::from_millis(50);

pub(super) type Membership = BaseConsumer<GroupContext>;

/// What a process knows about its place in the group, shared by the group's inputs,
/// the consumer's rebalance callbacks and the completion listener.
pub(super) struct GroupState {
    pub(super) app_id: String,
    /// The context's listeners, told of each rebalance.
    listeners: Arc<ListenerBus>,
    consumer: OnceLock<Membership>,
    inner: Mutex<Inner>,
    changed: Condvar,
}

#[derive(Default)]
struct Inner {
    /// The partitions owned, each with the epoch it was taken over in: a partition
    /// given up and taken again has a new one, and its shard or position is read
    /// afresh from Kafka, since another process may have moved it on meanwhile.
    owned: BTreeMap<TopicPartition, u64>,
    /// Counts the assignments received.
    epoch: u64,
    rebalances: u64,
    last_cut: Option<Time>,
    last_done: Option<Time>,
    /// What batches cut but not completed must write once their outputs are done.
    pending: BTreeMap<Time, Pending>,
    /// Input offsets of completed batches not yet committed.
    to_commit: BTreeMap<TopicPartition, i64>,
    /// What was owned before the revocation of a rebalance whose assignment has not
    /// come yet: the listeners hear of revocation and assignment as one change.
    before_rebalance: Option<BTreeSet<TopicPartition>>,
    stopping: bool,
}

#[derive(Default)]
struct Pending {
    changelog: Vec<Outgoing>,
    commits: Vec<(TopicPartition, i64)>,
}

/// A process's assignment, for the status page and for programs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The input partitions and shards (repartition topic partitions) this process owns.
    pub owned: Vec<TopicPartition>,
    /// How many times the assignment changed since start.
    pub rebalances: u64,
}

impl GroupState {
    pub(super) fn new(app_id: String, listeners: Arc<ListenerBus>) -> Arc<Self> {
        Arc::new(GroupState {
            app_id,
            listeners,
            consumer: OnceLock::new(),
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
        })
    }

    pub(super) fn set_consumer(&self, consumer: Membership) {
        let _ = self.consumer.set(consumer);
    }

    pub(super) fn consumer(&self) -> Option<&Membership> {
        self.consumer.get()
    }

    /// Serves rebalance callbacks and commits what completed batches read.
    pub(super) fn poll(&self) {
        let Some(consumer) = self.consumer.get() else {
            return;
        };
        // Every partition is paused: poll returns only events, or a record fetched in
        // the instant between an assignment and its pause, which is read again anyway.
        while consumer.poll(Duration::ZERO).is_some() {}
        self.commit(None);
    }

    /// The partitions of `topics` this process owns now, each with the epoch it was
    /// taken over in.
    pub(super) fn owned_of(&self, topics: &[String]) -> Vec<(TopicPartition, u64)> {
        lock(&self.inner)
            .owned
            .iter()
            .filter(|(p, _)| topics.contains(&p.topic))
            .map(|(p, epoch)| (p.clone(), *epoch))
            .collect()
    }

    pub(super) fn assignment(&self) -> Assignment {
        let inner = lock(&self.inner);
        Assignment {
            owned: inner.owned.keys().cloned().collect(),
            rebalances: inner.rebalances,
        }
    }

    /// The batch at `time` is being cut; the input offsets it reached are committed
    /// once it completes.
    pub(super) fn cut(&self, time: Time, commits: Vec<(TopicPartition, i64)>) {
        let mut inner = lock(&self.inner);
        inner.last_cut = Some(time);
        inner.pending.entry(time).or_default().commits = commits;
    }

    /// Changelog records the batch at `time` writes once its outputs completed.
    pub(super) fn add_changelog(&self, time: Time, records: Vec<Outgoing>) {
        if !records.is_empty() {
            let mut inner = lock(&self.inner);
            inner
                .pending
                .entry(time)
                .or_default()
                .changelog
                .extend(records);
        }
    }

    pub(super) fn stop(&self) {
        lock(&self.inner).stopping = true;
        self.changed.notify_all();
    }

    /// Waits until every batch cut so far has completed (or the context stops).
    fn wait_for_batches(&self) {
        let mut inner = lock(&self.inner);
        while !inner.stopping && inner.last_cut > inner.last_done {
            inner = self
                .changed
                .wait_timeout(inner, REVOKE_POLL)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Commits the offsets of completed batches, of `only` these partitions if given.
    fn commit(&self, only: Option<&BTreeSet<TopicPartition>>) {
        let Some(consumer) = self.consumer.get() else {
            return;
        };
        let offsets: Vec<(TopicPartition, i64)> = {
            let mut inner = lock(&self.inner);
            let taken = std::mem::take(&mut inner.to_commit);
            let (chosen, kept): (BTreeMap<_, _>, BTreeMap<_, _>) = taken
                .into_iter()
                .partition(|(p, _)| only.is_none_or(|only| only.contains(p)));
            inner.to_commit = kept;
            chosen.into_iter().collect()
        };
        if offsets.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for (partition, offset) in &offsets {
            if let Err(e) = list.add_partition_offset(
                &partition.topic,
                partition.partition,
                Offset::Offset(*offset),
            ) {
                tracing::warn!(
                    "kafka group {:?}: cannot commit {partition}: {e}",
                    self.app_id
                );
            }
        }
        if let Err(e) = consumer.commit(&list, CommitMode::Sync) {
            // Not a loss: a partition read again from an older offset writes the same
            // records, which the shards skip.
            tracing::debug!(
                "kafka group {:?}: offsets not committed ({e}); they are committed with a later batch",
                self.app_id
            );
            let mut inner = lock(&self.inner);
            for (partition, offset) in offsets {
                inner.to_commit.entry(partition).or_insert(offset);
            }
        }
    }

    fn revoked(&self, list: &TopicPartitionList) {
        let revoked = partitions(list);
        tracing::info!(
            "kafka group {:?}: giving up {} once the batches in flight complete",
            self.app_id,
            names(&revoked)
        );
        self.wait_for_batches();
        self.commit(Some(&revoked));
        let mut inner = lock(&self.inner);
        if inner.before_rebalance.is_none() {
            inner.before_rebalance = Some(inner.owned.keys().cloned().collect());
        }
        for partition in &revoked {
            inner.owned.remove(partition);
            inner.to_commit.remove(partition);
        }
    }

    fn assigned(&self, list: &TopicPartitionList) {
        let assigned = partitions(list);
        tracing::info!(
            "kafka group {:?}: this process now owns {}",
            self.app_id,
            names(&assigned)
        );
        let change = {
            let mut inner = lock(&self.inner);
            let before = inner
                .before_rebalance
                .take()
                .unwrap_or_else(|| inner.owned.keys().cloned().collect());
            inner.epoch += 1;
            let epoch = inner.epoch;
            for partition in &assigned {
                inner.owned.entry(partition.clone()).or_insert(epoch);
            }
            inner.rebalances += 1;
            RebalanceInfo {
                group: self.app_id.clone(),
                taken: pairs(assigned.difference(&before)),
                given_up: pairs(before.difference(&assigned)),
                owned: pairs(inner.owned.keys()),
                rebalances: inner.rebalances,
            }
        };
        self.listeners.post(|l| l.on_rebalance(&change));
    }
}

fn partitions(list: &TopicPartitionList) -> BTreeSet<TopicPartition> {
    list.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

fn pairs<'a>(partitions: impl IntoIterator<Item = &'a TopicPartition>) -> Vec<(String, i32)> {
    partitions
        .into_iter()
        .map(|p| (p.topic.clone(), p.partition))
        .collect()
}

fn names<'a>(partitions: impl IntoIterator<Item = &'a TopicPartition>) -> String {
    let names: Vec<String> = partitions.into_iter().map(ToString::to_string).collect();
    if names.is_empty() {
        "no partition".into()
    } else {
        names.join(", ")
    }
}

/// The membership consumer's context: rebalance callbacks.
pub(super) struct GroupContext {
    pub(super) state: Weak<GroupState>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Revoke(list), Some(state)) = (rebalance, self.state.upgrade()) {
            state.revoked(list);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        match rebalance {
            Rebalance::Assign(list) => {
                if let Err(e) = consumer.pause(list) {
                    tracing::warn!(
                        "kafka group {:?}: cannot pause the membership consumer: {e}; it fetches records it does not use",
                        state.app_id
                    );
                }
                state.assigned(list);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                tracing::warn!("kafka group {:?}: rebalance failed: {e}", state.app_id);
            }
        }
    }
}

/// Writes the changelog records of each completed batch and hands its input offsets
/// to the next commit.
pub(super) struct CompletionListener {
    pub(super) state: Arc<GroupState>,
    pub(super) writer: Arc<Writer>,
}

impl StreamingListener for CompletionListener {
    fn on_batch_completed(&self, info: &BatchInfo) {
        let state = &self.state;
        let done: Vec<Pending> = {
            let mut inner = lock(&state.inner);
            let later = inner
                .pending
                .split_off(&Time::from_millis(info.batch_time.as_millis() + 1));
            let done = std::mem::replace(&mut inner.pending, later);
            done.into_values().collect()
        };
        if info.failure.is_none() {
            let records: Vec<Outgoing> = done.iter().flat_map(|p| p.changelog.clone()).collect();
            match self.writer.write_all(&records) {
                Ok(()) => {
                    let mut inner = lock(&state.inner);
                    for (partition, offset) in done.into_iter().flat_map(|p| p.commits) {
                        inner.to_commit.insert(partition, offset);
                    }
                }
                Err(e) => tracing::error!(
                    "kafka group {:?}: the changelog of batch {} could not be written: {e}. A process taking its shards over redoes the batches since the last written one",
                    state.app_id,
                    info.batch_time
                ),
            }
        }
        let mut inner = lock(&state.inner);
        inner.last_done = inner.last_done.max(Some(info.batch_time));
        drop(inner);
        state.changed.notify_all();
    }

    fn on_streaming_stopped(&self) {
        self.state.stop();
    }
}
