//! Scale-out through a Kafka consumer group, with real processes: several copies of a
//! running word count share one application id; one is killed with SIGKILL mid-stream
//! and started again later, another joins halfway. Once the input is consumed, the
//! last total of every word on the output topic must be its exact count, and the
//! shards' changelogs must say that every word was applied exactly once.
//!
//! The copies are this test binary run again as the child test `scale_out_child`
//! (the environment says which topics), each with its own checkpoint directory. They
//! run on the system clock with short batches: group membership takes real time.
//! Nothing asserted depends on timing; the waits are for the input to be consumed,
//! with a generous deadline.
#![cfg(feature = "kafka")]

mod kafka_support;

use std::collections::BTreeMap;
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
    let [app_id, input, output, checkpoint] = fields[..] else {
        panic!("{CHILD_ENV}: expected 4 fields, got {setting:?}");
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
    let totals = group
        .input_stream([input])
        .unwrap()
        .repartition_by_key("counts", |record| {
            let text = record.value_text().unwrap_or_default();
            text.split_whitespace()
                .map(|word| (word.to_string(), 1u64))
                .collect::<Vec<_>>()
        })
        .unwrap()
        .update_state_by_key(|new: &[u64], total: Option<u64>| {
            Some(total.unwrap_or(0) + new.iter().sum::<u64>())
        })
        .unwrap();
    totals
        .write_to_kafka(&config, output, |(word, total)| {
            KafkaMessage::keyed(word, total.to_string())
        })
        .unwrap();
    ssc.add_listener(Progress);
    ssc.start().unwrap();
    println!("STARTED");
    std::thread::spawn(move || {
        let mut reported = 0;
        loop {
            let rebalances = group.assignment().rebalances;
            if rebalances != reported {
                println!("REBALANCES {rebalances}");
                reported = rebalances;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    ssc.await_termination().unwrap();
}

/// A running copy, with the number of input batches and rebalances it reported.
struct Copy {
    child: Child,
    batches: Arc<AtomicUsize>,
    rebalances: Arc<AtomicUsize>,
}

impl Copy {
    fn start(app_id: &str, input: &str, output: &str, dir: &std::path::Path) -> Copy {
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
                format!("{app_id} {input} {output} {}", checkpoint.display()),
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
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (counted, rebalanced) = (batches.clone(), rebalances.clone());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if line.starts_with("PROGRESS ") {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(n) = line.strip_prefix("REBALANCES ") {
                    rebalanced.store(n.trim().parse().unwrap(), Ordering::SeqCst);
                }
            }
        });
        Copy {
            child,
            batches,
            rebalances,
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
    let app_id = unique_name("scale-out-app");
    let dir = tempfile::tempdir().unwrap();
    let (messages, expected) = corpus(1200);
    let words: u64 = expected.values().sum();
    let (first, second) = messages.split_at(messages.len() / 2);
    produce(&input, first);

    let a = Copy::start(&app_id, &input, &output, dir.path());
    let b = Copy::start(&app_id, &input, &output, dir.path());
    let c = Copy::start(&app_id, &input, &output, dir.path());
    a.wait_for_batches(kill_after);
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
    let d = Copy::start(&app_id, &input, &output, dir.path());
    produce(&input, second);
    let a = Copy::start(&app_id, &input, &output, dir.path());

    let mut last = LastValues::new(&output);
    let deadline = Instant::now() + Duration::from_secs(120);
    let applied = loop {
        last.poll();
        if last.values == expected {
            // A broker slow to answer is asked again on the next round.
            let applied = KafkaGroup::shard_progress(&config(), &app_id, "counts")
                .map(|shards| shards.iter().map(|s| s.applied).sum::<u64>());
            if let Ok(applied) = applied
                && applied >= words
            {
                break applied;
            }
        }
        assert!(
            Instant::now() < deadline,
            "killed after {kill_after} batches: the totals did not reach the counts\n got {:?}\nwant {expected:?}",
            last.values
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for copy in [a, b, c, d] {
        copy.kill();
    }
    assert_eq!(
        applied, words,
        "killed after {kill_after} batches: the shards applied {applied} words of {words}"
    );
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
