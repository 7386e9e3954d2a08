//! Scale-out through a Kafka consumer group, with real processes: several copies of a
//! running word count share one application id; one is killed with SIGKILL mid-stream
//! and started again later, another joins halfway. Once the input is consumed, the
//! last total of every word on the output topic must be its exact count (both from
//! running state and from a window longer than the test), and the shards' changelogs
//! must say that every word was applied exactly once.
//!
//! The copies are this test binary run again as the child test `scale_out_child`
//! (the environment says which topics), each with its own checkpoint directory. They
//! run on the system clock with short batches: group membership takes real time.
//! Nothing asserted depends on timing; the waits are for the input to be consumed,
//! with a generous deadline.
#![cfg(feature = "kafka")]

mod kafka_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dstream::kafka::{KafkaGroup, KafkaMessage};
use dstream::{BatchInfo, RebalanceInfo, State, StateSpec, StreamingContext, StreamingListener};
use kafka_support::{bootstrap, config, new_topic, produce, unique_name};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const CHILD_ENV: &str = "DSTREAM_SCALE_OUT_CHILD";
const PARTITIONS: i32 = 6;
const VOCABULARY: [&str; 12] = [
    "apache",
    "spark",
    "streaming",
    "kafka",
    "rust",
    "dstream",
    "batch",
    "shard",
    "group",
    "offset",
    "state",
    "topic",
];

/// Prints `PROGRESS <records>` after every batch that read input.
struct Progress;

impl StreamingListener for Progress {
    fn on_batch_completed(&self, batch: &BatchInfo) {
        if batch.num_records > 0 {
            println!("PROGRESS {}", batch.num_records);
        }
    }
}

/// The copy of the program, run by the parent test through `CHILD_ENV`
/// (`app-id input output checkpoint-dir`); does nothing in a normal test run.
#[test]
#[ignore = "a child process's role, run by this file's tests; does nothing by itself"]
fn scale_out_child() {
    let Ok(setting) = std::env::var(CHILD_ENV) else {
        return;
    };
    let fields: Vec<&str> = setting.split(' ').collect();
    let [app_id, input, output, windowed, checkpoint] = fields[..] else {
        panic!("{CHILD_ENV}: expected 5 fields, got {setting:?}");
    };
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let mut config = config();
    if let Ok(debug) = std::env::var("SCALE_OUT_RDKAFKA_DEBUG") {
        config = config.set("debug", debug);
    }
    let ssc = StreamingContext::new("local[1]", Duration::from_millis(200)).unwrap();
    ssc.checkpoint(checkpoint).unwrap();
    let group = KafkaGroup::new(&ssc, app_id, &config)
        .unwrap()
        .max_records_per_partition(15);
    let records = group.input_stream([input]).unwrap();
    let words = |record: &dstream::kafka::KafkaRecord| {
        let text = record.value_text().unwrap_or_default();
        text.split_whitespace()
            .map(|word| (word.to_string(), 1u64))
            .collect::<Vec<_>>()
    };
    let totals = records
        .repartition_by_key("counts", words)
        .unwrap()
        .update_state_by_key(|new: &[u64], total: Option<u64>| {
            Some(total.unwrap_or(0) + new.iter().sum::<u64>())
        })
        .unwrap();
    // The same counts as a window longer than the test: its state (each batch's
    // count in the window) moves with its shards too.
    let windows = records
        .repartition_by_key("windowed", words)
        .unwrap()
        .reduce_by_key_and_window_inv(
            |a, b| a + b,
            |a, b| a - b,
            Duration::from_secs(3600),
            Duration::from_millis(200),
        )
        .unwrap();
    for (stream, topic) in [(totals, output), (windows, windowed)] {
        stream
            .write_to_kafka(&config, topic, |(word, total)| {
                KafkaMessage::keyed(word, total.to_string())
            })
            .unwrap();
    }
    ssc.add_listener(Progress);
    ssc.start().unwrap();
    println!("STARTED");
    let input = input.to_string();
    std::thread::spawn(move || {
        let mut reported = (0, 0);
        loop {
            let assignment = group.assignment();
            let owned = assignment.owned.iter().filter(|p| p.topic == input).count();
            if (assignment.rebalances, owned) != reported {
                // The partitions first: a parent that sees the rebalance sees them too.
                println!("OWNS {owned}");
                println!("REBALANCES {}", assignment.rebalances);
                reported = (assignment.rebalances, owned);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    ssc.await_termination().unwrap();
}

/// A running copy, with the number of input batches and rebalances it reported, and
/// how many input partitions it owns.
struct Copy {
    child: Child,
    batches: Arc<AtomicUsize>,
    rebalances: Arc<AtomicUsize>,
    owned: Arc<AtomicUsize>,
}

impl Copy {
    fn start(app_id: &str, topics: [&str; 3], dir: &std::path::Path) -> Copy {
        let [input, output, windowed] = topics;
        let checkpoint = dir.join(unique_name("copy"));
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "scale_out_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(
                CHILD_ENV,
                format!(
                    "{app_id} {input} {output} {windowed} {}",
                    checkpoint.display()
                ),
            )
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap())
            .stdout(Stdio::piped())
            // With SCALE_OUT_LOGS=DIR (and RUST_LOG=dstream=info), each copy logs to
            // a file there: assignments, takeovers.
            .stderr(match std::env::var_os("SCALE_OUT_LOGS") {
                Some(logs) => Stdio::from(
                    std::fs::File::create(std::path::Path::new(&logs).join(unique_name("copy")))
                        .unwrap(),
                ),
                None => Stdio::null(),
            })
            .spawn()
            .unwrap();
        let batches = Arc::new(AtomicUsize::new(0));
        let rebalances = Arc::new(AtomicUsize::new(0));
        let owned = Arc::new(AtomicUsize::new(0));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (counted, rebalanced, owning) = (batches.clone(), rebalances.clone(), owned.clone());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if line.starts_with("PROGRESS ") {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(n) = line.strip_prefix("REBALANCES ") {
                    rebalanced.store(n.trim().parse().unwrap(), Ordering::SeqCst);
                }
                if let Some(n) = line.strip_prefix("OWNS ") {
                    owning.store(n.trim().parse().unwrap(), Ordering::SeqCst);
                }
            }
        });
        Copy {
            child,
            batches,
            rebalances,
            owned,
        }
    }

    fn wait_for_batches(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.batches.load(Ordering::SeqCst) < n {
            assert!(Instant::now() < deadline, "a copy did not read {n} batches");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(self) {}
}

/// A copy is killed with SIGKILL when dropped, also when the test fails.
impl Drop for Copy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deterministic lines of `VOCABULARY` words, and how often each word occurs.
fn corpus(lines: usize) -> (Vec<(i32, String)>, BTreeMap<String, u64>) {
    let mut seed = 0x2545_f491_u64;
    let mut counts = BTreeMap::new();
    let mut messages = Vec::with_capacity(lines);
    for n in 0..lines {
        let mut line = Vec::new();
        for _ in 0..(1 + n % 5) {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let word = VOCABULARY[(seed >> 33) as usize % VOCABULARY.len()];
            *counts.entry(word.to_string()).or_insert(0) += 1;
            line.push(word);
        }
        messages.push(((n % PARTITIONS as usize) as i32, line.join(" ")));
    }
    (messages, counts)
}

/// The last value of every key on a topic, read as it grows.
struct LastValues {
    consumer: BaseConsumer,
    values: BTreeMap<String, u64>,
}

impl LastValues {
    fn new(topic: &str) -> LastValues {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("group.id", unique_name("last-values"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            list.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&list).unwrap();
        LastValues {
            consumer,
            values: BTreeMap::new(),
        }
    }

    fn poll(&mut self) {
        while let Some(message) = self.consumer.poll(Duration::from_millis(50)) {
            let message = message.unwrap();
            let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
            let value = std::str::from_utf8(message.payload().unwrap()).unwrap();
            self.values.insert(key, value.parse().unwrap());
        }
    }
}

fn run_scenario(kill_after: usize) {
    let input = new_topic("scale-out-in", PARTITIONS);
    let output = new_topic("scale-out-out", PARTITIONS);
    let windowed = new_topic("scale-out-windowed", PARTITIONS);
    let topics = [input.as_str(), output.as_str(), windowed.as_str()];
    let app_id = unique_name("scale-out-app");
    let dir = tempfile::tempdir().unwrap();
    let (messages, expected) = corpus(1200);
    let words: u64 = expected.values().sum();
    let (first, second) = messages.split_at(messages.len() / 2);
    produce(&input, first);

    let a = Copy::start(&app_id, topics, dir.path());
    let b = Copy::start(&app_id, topics, dir.path());
    let c = Copy::start(&app_id, topics, dir.path());
    a.wait_for_batches(kill_after);
    // The test broker (Tansu 0.6) keeps a killed member in the group until a survivor
    // rejoins (below), so a copy killed while the group is still rebalancing can be
    // given partitions after its death, which then wait for a join that never comes.
    // The kill waits for the three copies to share the input between them, each with
    // some. (Kafka expires a dead member's session whenever it dies.)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let owned = [&a, &b, &c].map(|copy| copy.owned.load(Ordering::SeqCst));
        if owned.iter().all(|n| *n > 0) && owned.iter().sum::<usize>() == PARTITIONS as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the three copies did not settle on an assignment"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    a.kill();
    // The test broker (Tansu 0.6) does not rebalance when a member's session expires:
    // one survivor rejoins and gets its own partitions back, and the dead member's stay
    // unassigned until a member joins. New copies start once a survivor has seen the
    // expiry, so that their joining rebalances among live members only. (Kafka itself
    // rebalances all survivors at expiry.)
    let seen = [&b, &c].map(|copy| copy.rebalances.load(Ordering::SeqCst));
    let deadline = Instant::now() + Duration::from_secs(60);
    while [&b, &c]
        .iter()
        .zip(seen)
        .all(|(copy, seen)| copy.rebalances.load(Ordering::SeqCst) == seen)
    {
        assert!(
            Instant::now() < deadline,
            "no survivor saw the killed copy leave"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let d = Copy::start(&app_id, topics, dir.path());
    produce(&input, second);
    let a = Copy::start(&app_id, topics, dir.path());

    // The test broker can also give a joining copy a partition before its previous
    // owner has given it up, and that owner's last write of a total can then land after
    // the new owner's (the zombie case of the README: state stays exact, an output can
    // be older). Once the four copies have kept one assignment for a while, a last line
    // with every word makes the owners write every total again.
    let copies = [&a, &b, &c, &d];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut settled = (Vec::new(), Instant::now());
    loop {
        let now: Vec<(usize, usize)> = copies
            .iter()
            .map(|copy| {
                let owned = copy.owned.load(Ordering::SeqCst);
                (owned, copy.rebalances.load(Ordering::SeqCst))
            })
            .collect();
        let all_owned = now.iter().map(|(owned, _)| owned).sum::<usize>() == PARTITIONS as usize;
        if now != settled.0 || !all_owned {
            settled = (now, Instant::now());
        } else if settled.1.elapsed() > Duration::from_secs(3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the four copies did not settle on an assignment"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let last_line = VOCABULARY.join(" ");
    produce(&input, &[(0, last_line)]);
    let mut expected = expected;
    for word in VOCABULARY {
        *expected.entry(word.to_string()).or_insert(0) += 1;
    }
    let words = words + VOCABULARY.len() as u64;

    let mut last = LastValues::new(&output);
    let mut last_windows = LastValues::new(&windowed);
    let applied_by = |operation: &str| {
        KafkaGroup::shard_progress(&config(), &app_id, operation)
            .map(|shards| shards.iter().map(|s| s.applied).sum::<u64>())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(last.values == expected && last_windows.values == expected) {
        assert!(
            Instant::now() < deadline,
            "killed after {kill_after} batches: the totals did not reach the counts\n got {:?}\n windows {:?}\nwant {expected:?}",
            last.values,
            last_windows.values
        );
        std::thread::sleep(Duration::from_millis(200));
        last.poll();
        last_windows.poll();
    }
    // The changelogs: each word applied once. Their markers come after the outputs, so
    // they may lag a little. When the test broker gave a shard to a new owner before
    // the old one had given it up, the old owner's last marker can come after the new
    // owner read the changelog, and the chain a takeover follows is then the old
    // owner's: a consistent history that has applied fewer pairs (a takeover replays
    // the rest from the repartition topic). A pair applied twice would show as more.
    let settle = Instant::now() + Duration::from_secs(10);
    let applied = loop {
        // A broker slow to answer is asked again on the next round.
        if let (Ok(counted), Ok(windowed)) = (applied_by("counts"), applied_by("windowed"))
            && ((counted, windowed) == (words, words) || Instant::now() > settle)
        {
            break (counted, windowed);
        }
        assert!(
            Instant::now() < deadline,
            "the changelogs could not be read"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for copy in [a, b, c, d] {
        copy.kill();
    }
    assert!(
        applied.0 <= words && applied.1 <= words,
        "killed after {kill_after} batches: the shards applied (totals, windows) {applied:?} of {words} words"
    );
    if applied != (words, words) {
        println!(
            "killed after {kill_after} batches: the changelogs' chains hold {applied:?} of {words} words (a shard moved before its old owner had given it up)"
        );
    }
}

#[test]
fn copies_killed_restarted_and_joining_keep_exact_totals() {
    let points: Vec<usize> = match std::env::var("SCALE_OUT_KILL_AFTER") {
        Ok(points) => points.split(',').map(|p| p.parse().unwrap()).collect(),
        Err(_) => vec![2, 6],
    };
    for kill_after in points {
        run_scenario(kill_after);
    }
}

/// Sends every rebalance event to the test.
struct Rebalances(std::sync::Mutex<std::sync::mpsc::Sender<RebalanceInfo>>);

impl StreamingListener for Rebalances {
    fn on_rebalance(&self, change: &RebalanceInfo) {
        let _ = self.0.lock().unwrap().send(change.clone());
    }
}

/// A copy of a program in this process: a group member reading `input`, reporting its
/// rebalances.
fn member(
    app_id: &str,
    input: &str,
) -> (StreamingContext, std::sync::mpsc::Receiver<RebalanceInfo>) {
    let ssc = StreamingContext::new("local[2]", Duration::from_millis(200)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    ssc.add_listener(Rebalances(std::sync::Mutex::new(tx)));
    let group = KafkaGroup::new(&ssc, app_id, &config()).unwrap();
    group
        .input_stream([input])
        .unwrap()
        .foreach_rdd(|_, _| {})
        .unwrap();
    ssc.start().unwrap();
    (ssc, rx)
}

/// Listeners hear what a process takes and gives up: all partitions when it is alone,
/// and, when a second process joins, the ones that moved to it.
#[test]
fn rebalances_are_reported_to_listeners() {
    let input = new_topic("rebalance-in", 2);
    let app_id = unique_name("rebalance");
    let patience = Duration::from_secs(60);
    let both = vec![(input.clone(), 0), (input.clone(), 1)];

    let (first, first_events) = member(&app_id, &input);
    let alone = first_events
        .recv_timeout(patience)
        .expect("the first assignment");
    assert_eq!(
        (alone.taken.clone(), alone.given_up.clone()),
        (both.clone(), vec![])
    );
    assert_eq!(
        (alone.owned, alone.rebalances, alone.group),
        (both.clone(), 1, app_id.clone())
    );

    let (second, second_events) = member(&app_id, &input);
    let joined = second_events
        .recv_timeout(patience)
        .expect("the second's assignment");
    let moved = loop {
        let change = first_events
            .recv_timeout(patience)
            .expect("the first gives up a partition");
        if !change.given_up.is_empty() {
            break change;
        }
    };
    assert_eq!(
        moved.given_up, joined.taken,
        "what one gave up, the other took"
    );
    assert_eq!(moved.given_up.len(), 1);
    let mut all = [moved.owned.clone(), joined.owned.clone()].concat();
    all.sort();
    assert_eq!(all, both, "between them they own each partition once");
    second.stop(false).unwrap();
    first.stop(false).unwrap();
}

/// The words of `lines`, counted.
fn word_counts(lines: &[(i32, String)]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (_, line) in lines {
        for word in line.split(' ') {
            *counts.entry(word.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// `reduce_by_key` and `map_with_state` across a group: every pair is reduced in
/// exactly one batch, and the mapping function numbers each word's pairs 1, 2, ... once
/// each, whichever input partition they came from.
#[test]
fn group_reduce_by_key_and_map_with_state_see_each_pair_once() {
    let input = new_topic("group-ops-in", 3);
    let lines: Vec<(i32, String)> = (0..60)
        .map(|i| (i % 3, format!("w{} w{} w{}", i % 7, i % 5, i % 2)))
        .collect();
    produce(&input, &lines);
    let expected = word_counts(&lines);
    let words: u64 = expected.values().sum();

    let ssc = StreamingContext::new("local[2]", Duration::from_millis(200)).unwrap();
    let group = KafkaGroup::new(&ssc, unique_name("group-ops"), &config()).unwrap();
    let records = group.input_stream([input.as_str()]).unwrap();
    let pairs = |record: &dstream::kafka::KafkaRecord| {
        let text = record.value_text().unwrap_or_default().into_owned();
        text.split(' ')
            .map(|w| (w.to_string(), 1u64))
            .collect::<Vec<_>>()
    };
    let sums = records
        .repartition_by_key("sums", pairs)
        .unwrap()
        .reduce_by_key(|a, b| a + b)
        .unwrap();
    let numbers = records
        .repartition_by_key("numbers", pairs)
        .unwrap()
        .map_with_state(StateSpec::function(
            |word: &String, _: Option<u64>, seen: &mut State<u64>| {
                let n = seen.get().copied().unwrap_or(0) + 1;
                seen.update(n);
                (word.clone(), n)
            },
        ))
        .unwrap();
    let batches = Arc::new(std::sync::Mutex::new(Vec::<Vec<(String, u64)>>::new()));
    let numbered = Arc::new(std::sync::Mutex::new(Vec::<(String, u64)>::new()));
    let sink = batches.clone();
    sums.foreach_rdd(move |rdd, _| sink.lock().unwrap().push(rdd.collect()))
        .unwrap();
    let sink = numbered.clone();
    numbers
        .foreach_rdd(move |rdd, _| sink.lock().unwrap().extend(rdd.collect()))
        .unwrap();
    ssc.start().unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let reduced: u64 = batches
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|(_, n)| n)
            .sum();
        let mapped = numbered.lock().unwrap().len() as u64;
        if reduced >= words && mapped >= words {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reduced {reduced} and numbered {mapped} of {words} words"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ssc.stop(false).unwrap();

    let mut totals = BTreeMap::new();
    for batch in batches.lock().unwrap().iter() {
        let mut keys: Vec<&String> = batch.iter().map(|(word, _)| word).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys.len(),
            batch.len(),
            "one record per key and batch: {batch:?}"
        );
        for (word, n) in batch {
            *totals.entry(word.clone()).or_insert(0) += n;
        }
    }
    assert_eq!(totals, expected);
    let mut per_word: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (word, n) in numbered.lock().unwrap().iter() {
        per_word.entry(word.clone()).or_default().push(*n);
    }
    let want: BTreeMap<String, Vec<u64>> = expected
        .iter()
        .map(|(word, count)| (word.clone(), (1..=*count).collect()))
        .collect();
    assert_eq!(
        per_word, want,
        "each word's pairs numbered 1..=count, in order"
    );
}

/// A keyed operation's function that panics in a shard fails its batch, and the
/// context stops with the panic's message, as a function failing in a partition does.
#[test]
fn a_panicking_shard_function_fails_the_batch() {
    let input = new_topic("group-fail-in", 1);
    produce(&input, &[(0, "ok".to_string()), (0, "boom".to_string())]);
    let ssc = StreamingContext::new("local[2]", Duration::from_millis(200)).unwrap();
    let group = KafkaGroup::new(&ssc, unique_name("group-fail"), &config()).unwrap();
    group
        .input_stream([input.as_str()])
        .unwrap()
        .repartition_by_key("words", |record| {
            record.value_text().map(|word| {
                let length = word.len() as u64;
                (word.into_owned(), length)
            })
        })
        .unwrap()
        .update_state_by_key(|lengths: &[u64], total: Option<u64>| {
            assert!(!lengths.contains(&4), "no four-letter words");
            Some(total.unwrap_or(0) + lengths.iter().sum::<u64>())
        })
        .unwrap()
        .foreach_rdd(|_, _| {})
        .unwrap();
    ssc.start().unwrap();
    let stopped = ssc
        .await_termination_or_timeout(Duration::from_secs(120))
        .map(|done| format!("stopped without an error (terminated: {done})"));
    let err = stopped.expect_err("the batch with \"boom\" fails");
    assert!(
        matches!(&err, dstream::Error::BatchFailed { message, .. } if message.contains("no four-letter words")),
        "{err}"
    );
}

/// A pair's identity in the window tests: input partition, offset, word index.
type PairId = (i32, i64, usize);

/// What a windowed stream emitted: each word's window value, per batch time (ms).
type Emitted = Arc<std::sync::Mutex<Vec<(i64, Vec<(String, BTreeSet<PairId>)>)>>>;

fn record_windows(stream: &dstream::DStream<(String, BTreeSet<PairId>)>) -> Emitted {
    let emitted: Emitted = Arc::default();
    let sink = emitted.clone();
    stream
        .foreach_rdd(move |rdd, time| {
            sink.lock().unwrap().push((time.as_millis(), rdd.collect()));
        })
        .unwrap();
    emitted
}

/// For each pair, the batch times (ms) of the windows it was in; checks on the way
/// that every window holds each word once and no word with an empty window.
fn windows_of(emitted: &Emitted) -> BTreeMap<(String, PairId), Vec<i64>> {
    let mut seen: BTreeMap<(String, PairId), Vec<i64>> = BTreeMap::new();
    for (time, window) in emitted.lock().unwrap().iter() {
        let words: BTreeSet<&String> = window.iter().map(|(word, _)| word).collect();
        assert_eq!(words.len(), window.len(), "one value per word: {window:?}");
        for (word, pairs) in window {
            assert!(!pairs.is_empty(), "{word} emitted with an empty window");
            for pair in pairs {
                seen.entry((word.clone(), *pair)).or_default().push(*time);
            }
        }
    }
    seen
}

/// `reduce_by_key_and_window` across a group, without and with an inverse function:
/// the values are the pairs' identities (sets, merged by union and taken out by
/// difference), so every window says which pairs it holds. Each pair must be in
/// exactly `length / slide` windows, at consecutive slide times, and nowhere else;
/// windows slide by `slide` only; and keys whose window emptied are gone.
#[test]
fn group_windows_hold_each_pair_for_exactly_their_length() {
    let input = new_topic("group-window-in", 3);
    let lines: Vec<(i32, String)> = (0..45)
        .map(|i| (i % 3, format!("w{} w{}", i % 4, i % 3)))
        .collect();
    produce(&input, &lines);

    let batch = 200;
    let ssc = StreamingContext::new("local[2]", Duration::from_millis(batch)).unwrap();
    let group = KafkaGroup::new(&ssc, unique_name("group-window"), &config()).unwrap();
    // A few records per partition and batch, so that the pairs spread over batches.
    let group = group.max_records_per_partition(2);
    let records = group.input_stream([input.as_str()]).unwrap();
    let pairs = |record: &dstream::kafka::KafkaRecord| {
        let text = record.value_text().unwrap_or_default().into_owned();
        text.split(' ')
            .enumerate()
            .map(|(i, w)| {
                let id: PairId = (record.partition, record.offset, i);
                (w.to_string(), BTreeSet::from([id]))
            })
            .collect::<Vec<_>>()
    };
    let union = |mut a: BTreeSet<PairId>, b: BTreeSet<PairId>| {
        a.extend(b);
        a
    };
    let ms = Duration::from_millis;
    let plain = records
        .repartition_by_key("plain", pairs)
        .unwrap()
        .reduce_by_key_and_window(union, ms(3 * batch), ms(batch))
        .unwrap();
    let incremental = records
        .repartition_by_key("incremental", pairs)
        .unwrap()
        .reduce_by_key_and_window_inv_with(
            union,
            |a: BTreeSet<PairId>, b| a.difference(&b).copied().collect(),
            ms(4 * batch),
            ms(2 * batch),
            |_, pairs| !pairs.is_empty(),
        )
        .unwrap();
    let plain = record_windows(&plain);
    let incremental = record_windows(&incremental);
    ssc.start().unwrap();

    let mut expected: BTreeSet<(String, PairId)> = BTreeSet::new();
    for (offset, (partition, line)) in lines.iter().enumerate() {
        // Each partition got every third line, in order.
        let offset = i64::try_from(offset / 3).unwrap();
        for (i, word) in line.split(' ').enumerate() {
            expected.insert((word.to_string(), (*partition, offset, i)));
        }
    }
    let done = |emitted: &Emitted, count: usize| {
        let seen = windows_of(emitted);
        seen.len() == expected.len() && seen.values().all(|times| times.len() >= count)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(done(&plain, 3) && done(&incremental, 2)) {
        assert!(
            Instant::now() < deadline,
            "pairs in windows: {} and {} of {}",
            windows_of(&plain).len(),
            windows_of(&incremental).len(),
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Long enough for a window that wrongly kept a pair to show it.
    std::thread::sleep(Duration::from_millis(6 * batch));
    ssc.stop(false).unwrap();

    let step = i64::try_from(batch).unwrap();
    for (emitted, count, slide) in [(&plain, 3, step), (&incremental, 2, 2 * step)] {
        let seen = windows_of(emitted);
        assert_eq!(
            seen.keys().cloned().collect::<BTreeSet<_>>(),
            expected,
            "every pair, and nothing else"
        );
        for (pair, times) in &seen {
            let want: Vec<i64> = (0..count).map(|k| times[0] + k * slide).collect();
            assert_eq!(times, &want, "{pair:?}: in {count} consecutive windows");
        }
        let times: Vec<i64> = emitted.lock().unwrap().iter().map(|(t, _)| *t).collect();
        assert!(
            times.windows(2).all(|w| w[1] - w[0] == slide),
            "a window every {slide} ms: {times:?}"
        );
    }
}

/// The joins across a group: each key's left and right values come from one input
/// record, so they meet in one shard batch, and every join's result is known exactly.
#[test]
fn group_joins_pair_the_values_of_both_sides() {
    let input = new_topic("group-join-in", 3);
    // `key left... | right...`: keys k0..k29, some with one side empty.
    let lines: Vec<(i32, String)> = (0..30)
        .map(|i| {
            let left: Vec<String> = (0..i % 3).map(|j| format!("l{i}.{j}")).collect();
            let right: Vec<String> = (0..(i + 1) % 4).map(|j| format!("r{i}.{j}")).collect();
            (
                i % 3,
                format!("k{i} {}|{}", left.join(" "), right.join(" ")),
            )
        })
        .collect();
    produce(&input, &lines);
    let parsed: Vec<(String, Vec<String>, Vec<String>)> = lines
        .iter()
        .map(|(_, line)| {
            let (key, rest) = line.split_once(' ').unwrap();
            let (left, right) = rest.split_once('|').unwrap();
            let words = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
            (key.to_string(), words(left), words(right))
        })
        .collect();

    let ssc = StreamingContext::new("local[2]", Duration::from_millis(200)).unwrap();
    let group = KafkaGroup::new(&ssc, unique_name("group-join"), &config()).unwrap();
    let records = group.input_stream([input.as_str()]).unwrap();
    let side = |right: bool| {
        move |record: &dstream::kafka::KafkaRecord| {
            let text = record.value_text().unwrap_or_default().into_owned();
            let (key, rest) = text.split_once(' ').unwrap_or_default();
            let (left_values, right_values) = rest.split_once('|').unwrap_or_default();
            let values = if right { right_values } else { left_values };
            values
                .split_whitespace()
                .map(|v| (key.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        }
    };
    let both = |name: &str| {
        (
            records
                .repartition_by_key(&format!("{name}-l"), side(false))
                .unwrap(),
            records
                .repartition_by_key(&format!("{name}-r"), side(true))
                .unwrap(),
        )
    };
    fn collect<T: dstream::Data + Ord>(
        stream: &dstream::DStream<T>,
    ) -> Arc<std::sync::Mutex<Vec<T>>> {
        let all: Arc<std::sync::Mutex<Vec<T>>> = Arc::default();
        let sink = all.clone();
        stream
            .foreach_rdd(move |rdd, _| sink.lock().unwrap().extend(rdd.collect()))
            .unwrap();
        all
    }
    let (l, r) = both("inner");
    let inner = collect(&l.join(r).unwrap());
    let (l, r) = both("left");
    let left = collect(&l.left_outer_join(r).unwrap());
    let (l, r) = both("right");
    let right = collect(&l.right_outer_join(r).unwrap());
    let (l, r) = both("full");
    let full = collect(&l.full_outer_join(r).unwrap());
    let (l, r) = both("cogroup");
    let cogrouped = collect(&l.cogroup(r).unwrap());
    ssc.start().unwrap();

    let mut want_full = Vec::new();
    let mut want_cogroup = Vec::new();
    for (key, ls, rs) in &parsed {
        if !ls.is_empty() || !rs.is_empty() {
            want_cogroup.push((key.clone(), (ls.clone(), rs.clone())));
        }
        for l in ls {
            if rs.is_empty() {
                want_full.push((key.clone(), (Some(l.clone()), None)));
            }
            for r in rs {
                want_full.push((key.clone(), (Some(l.clone()), Some(r.clone()))));
            }
        }
        if ls.is_empty() {
            for r in rs {
                want_full.push((key.clone(), (None, Some(r.clone()))));
            }
        }
    }
    want_full.sort();
    want_cogroup.sort();
    let want_inner: Vec<_> = want_full
        .iter()
        .filter_map(|(k, (l, r))| Some((k.clone(), (l.clone()?, r.clone()?))))
        .collect();
    let want_left: Vec<_> = want_full
        .iter()
        .filter_map(|(k, (l, r))| Some((k.clone(), (l.clone()?, r.clone()))))
        .collect();
    let want_right: Vec<_> = want_full
        .iter()
        .filter_map(|(k, (l, r))| Some((k.clone(), (l.clone(), r.clone()?))))
        .collect();

    fn sorted<T: Clone + Ord>(all: &std::sync::Mutex<Vec<T>>) -> Vec<T> {
        let mut all = all.lock().unwrap().clone();
        all.sort();
        all
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while sorted(&full).len() < want_full.len() || sorted(&cogrouped).len() < want_cogroup.len() {
        assert!(Instant::now() < deadline, "joined {:?}", sorted(&full));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every join has had its batches by then, and time to show extra records.
    std::thread::sleep(Duration::from_millis(1000));
    ssc.stop(false).unwrap();
    assert_eq!(sorted(&inner), want_inner);
    assert_eq!(sorted(&left), want_left);
    assert_eq!(sorted(&right), want_right);
    assert_eq!(sorted(&full), want_full);
    assert_eq!(sorted(&cogrouped), want_cogroup);
}

/// Keyed operations that cannot work across a group are refused with what to do.
#[test]
fn group_operations_refuse_what_cannot_work() {
    let input = new_topic("group-refuse-in", 1);
    let ssc = StreamingContext::new("local[2]", Duration::from_millis(200)).unwrap();
    let first = KafkaGroup::new(&ssc, unique_name("group-refuse"), &config()).unwrap();
    let second = KafkaGroup::new(&ssc, unique_name("group-refuse"), &config()).unwrap();
    let pairs = |record: &dstream::kafka::KafkaRecord| Some((record.offset, 1u64));
    let one = first.input_stream([input.as_str()]).unwrap();
    let other = second.input_stream([input.as_str()]).unwrap();
    let err = one
        .repartition_by_key("a", pairs)
        .unwrap()
        .join(other.repartition_by_key("b", pairs).unwrap())
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("same GroupStream"), "{err}");

    one.repartition_by_key("counts", pairs)
        .unwrap()
        .reduce_by_key(|a, b| a + b)
        .unwrap();
    let err = one
        .repartition_by_key("counts", pairs)
        .unwrap()
        .reduce_by_key(|a, b| a + b)
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("give each its own name"), "{err}");

    let err = one
        .repartition_by_key("windows", pairs)
        .unwrap()
        .reduce_by_key_and_window(
            |a, b| a + b,
            Duration::from_millis(300),
            Duration::from_millis(200),
        )
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, dstream::Error::NotAMultiple { .. }), "{err}");
}
