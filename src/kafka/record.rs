//! What a Kafka stream carries: records, the partitions they come from and the offset
//! ranges a batch read; and what `write_to_kafka` sends.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// One partition of one topic.
///
/// ```
/// use dstream::kafka::TopicPartition;
/// let tp = TopicPartition::new("words", 3);
/// assert_eq!(tp.to_string(), "words-3");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: String,
    /// The partition's number, from 0.
    pub partition: i32,
}

impl TopicPartition {
    /// The partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The offsets `[from_offset, until_offset)` of one partition that a batch read, as
/// Spark's `OffsetRange`.
///
/// ```
/// use dstream::kafka::OffsetRange;
/// let range = OffsetRange { topic: "words".into(), partition: 0, from_offset: 10, until_offset: 25 };
/// assert_eq!(range.count(), 15);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OffsetRange {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The first offset read.
    pub from_offset: i64,
    /// One past the last offset read: where the next batch starts.
    pub until_offset: i64,
}

impl OffsetRange {
    /// How many offsets the range spans.
    pub fn count(&self) -> u64 {
        u64::try_from(self.until_offset - self.from_offset).unwrap_or(0)
    }

    /// The partition the range is in.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

/// One record read from Kafka.
///
/// ```
/// use dstream::kafka::KafkaRecord;
/// let record = KafkaRecord {
///     topic: "words".into(), partition: 0, offset: 7,
///     key: None, value: Some(b"hello world".to_vec()), timestamp: Some(1_715_172_068_000),
/// };
/// assert_eq!(record.value_text().as_deref(), Some("hello world"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KafkaRecord {
    /// The topic it was read from.
    pub topic: String,
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key, if it has one.
    pub key: Option<Vec<u8>>,
    /// Its value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Its timestamp in milliseconds since the Unix epoch, if the producer or broker
    /// set one.
    pub timestamp: Option<i64>,
}

impl KafkaRecord {
    /// The value as text; bytes that are not UTF-8 become U+FFFD.
    pub fn value_text(&self) -> Option<Cow<'_, str>> {
        self.value.as_deref().map(String::from_utf8_lossy)
    }

    /// The key as text; bytes that are not UTF-8 become U+FFFD.
    pub fn key_text(&self) -> Option<Cow<'_, str>> {
        self.key.as_deref().map(String::from_utf8_lossy)
    }
}

/// A record for [`DStream::write_to_kafka`](crate::DStream::write_to_kafka) to send.
///
/// ```
/// use dstream::kafka::KafkaMessage;
/// let counted = KafkaMessage::keyed("spark", "3");
/// assert_eq!(counted.key.as_deref(), Some(&b"spark"[..]));
/// assert_eq!(KafkaMessage::value("hello").key, None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KafkaMessage {
    /// The key: records with the same key go to the same partition. `None`: the
    /// producer spreads the records over the partitions.
    pub key: Option<Vec<u8>>,
    /// The value; `None` sends a tombstone.
    pub value: Option<Vec<u8>>,
}

impl KafkaMessage {
    /// A message with a value and no key.
    pub fn value(value: impl Into<Vec<u8>>) -> Self {
        KafkaMessage {
            key: None,
            value: Some(value.into()),
        }
    }

    /// A message with a key and a value.
    pub fn keyed(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        KafkaMessage {
            key: Some(key.into()),
            value: Some(value.into()),
        }
    }
}
