//! `socket_text_stream` against a real TCP server on loopback, as `nc -lk` would be.
//!
//! The test plays the server. It waits until the receiver has accepted the lines it
//! sent (`await_records_received`), then advances the manual clock, so each batch's
//! content is exact however fast the machine is.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};

use common::{Harness, PATIENCE, accept, collect, lines, listen, sorted_batches};
use dstream::{Parallelism, StreamingConfig};

#[test]
fn lines_are_split_on_newlines_in_each_batch() {
    let (listener, port) = listen();
    let h = Harness::seconds();
    let out = collect(&h.ssc.socket_text_stream("127.0.0.1", port));
    h.ssc.start().unwrap();
    let mut server = accept(&listener);

    server.write_all(b"first line\r\nsecond ").unwrap();
    server.write_all(b"line\n").unwrap();
    h.ssc.await_records_received(2, PATIENCE).unwrap();
    h.run_batch();
    server.write_all(b"third line\nfourth").unwrap();
    h.ssc.await_records_received(3, PATIENCE).unwrap();
    h.run_batch();
    server.write_all(b" line\n").unwrap();
    h.ssc.await_records_received(4, PATIENCE).unwrap();
    let info = h.run_batch();
    h.ssc.stop(false).unwrap();

    let batches: Vec<Vec<String>> = out.lock().unwrap().iter().map(|(_, b)| b.clone()).collect();
    assert_eq!(
        batches,
        vec![
            lines(&["first line", "second line"]),
            lines(&["third line"]),
            lines(&["fourth line"]),
        ]
    );
    assert_eq!(info.num_records, 1);
}

#[test]
fn a_line_that_is_not_utf8_is_decoded_lossily_and_the_stream_goes_on() {
    let (listener, port) = listen();
    let h = Harness::seconds();
    let out = collect(&h.ssc.socket_text_stream("127.0.0.1", port));
    h.ssc.start().unwrap();
    let mut server = accept(&listener);
    server.write_all(b"caf\xe9 au lait\nplain\n").unwrap();
    h.ssc.await_records_received(2, PATIENCE).unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&out),
        vec![lines(&["caf\u{fffd} au lait", "plain"])]
    );
}

#[test]
fn the_receiver_reconnects_when_the_server_closes_and_comes_back() {
    let (listener, port) = listen();
    let h = Harness::seconds();
    let words = h
        .ssc
        .socket_text_stream("127.0.0.1", port)
        .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
        .map(|w| (w, 1))
        .reduce_by_key(|a, b| a + b);
    let out = collect(&words);
    h.ssc.start().unwrap();

    let mut first = accept(&listener);
    first
        .write_all(b"a b\nb\nlast line without newline")
        .unwrap();
    drop(first); // the server closes: the unfinished last line still counts
    h.ssc.await_records_received(3, PATIENCE).unwrap();
    h.run_batch();

    // The server is gone altogether for a while: batches go on, empty.
    drop(listener);
    h.run_batch();

    // It comes back on the same port; the receiver finds it again.
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut second = accept(&listener);
    second.write_all(b"b c\n").unwrap();
    h.ssc.await_records_received(4, PATIENCE).unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    let expected: Vec<Vec<(String, i32)>> = vec![
        common::counts(&[
            ("a", 1),
            ("b", 2),
            ("last", 1),
            ("line", 1),
            ("newline", 1),
            ("without", 1),
        ]),
        vec![],
        common::counts(&[("b", 1), ("c", 1)]),
    ];
    assert_eq!(sorted_batches(&out), expected);
}

#[test]
fn a_server_that_is_not_up_yet_is_retried_while_the_stream_runs() {
    let port = listen().1; // a port with nobody listening once the listener is dropped
    let h = Harness::seconds();
    let out = collect(&h.ssc.socket_text_stream("127.0.0.1", port));
    h.ssc.start().unwrap();
    h.run_batches(2);

    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut server = accept(&listener);
    server.write_all(b"finally\n").unwrap();
    h.ssc.await_records_received(1, PATIENCE).unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    assert_eq!(
        sorted_batches(&out),
        vec![vec![], vec![], lines(&["finally"])]
    );
}

#[test]
fn an_unknown_host_does_not_stop_the_stream() {
    let h = Harness::seconds();
    let out = collect(&h.ssc.socket_text_stream("no-such-host.invalid", 9999));
    h.ssc.start().unwrap();
    h.run_batches(2);
    h.ssc.stop(false).unwrap();
    assert_eq!(sorted_batches(&out), vec![Vec::<String>::new(), vec![]]);
}

#[test]
fn many_lines_arrive_intact_across_reads() {
    let (listener, port) = listen();
    let h = Harness::seconds();
    let counts = collect(&h.ssc.socket_text_stream("127.0.0.1", port).count_by_value());
    h.ssc.start().unwrap();
    let mut server = accept(&listener);
    let text: String = (0..200_000).map(|i| format!("word{}\n", i % 100)).collect();
    for chunk in text.as_bytes().chunks(7_777) {
        server.write_all(chunk).unwrap();
    }
    h.ssc.await_records_received(200_000, PATIENCE).unwrap();
    h.run_batch();
    h.ssc.stop(false).unwrap();

    let batch = &sorted_batches(&counts)[0];
    assert_eq!(batch.len(), 100);
    assert!(batch.iter().all(|(_, n)| *n == 2_000), "{:?}", &batch[..3]);
}

#[test]
fn a_graceful_stop_processes_lines_already_received() {
    let (listener, port) = listen();
    let h = Harness::seconds();
    let out = collect(&h.ssc.socket_text_stream("127.0.0.1", port));
    h.ssc.start().unwrap();
    let mut server = accept(&listener);
    server.write_all(b"one\ntwo\nthree\n").unwrap();
    h.ssc.await_records_received(3, PATIENCE).unwrap();
    h.ssc.stop(true).unwrap();
    assert_eq!(sorted_batches(&out), vec![lines(&["one", "three", "two"])]);
}

/// Opens once and lets every waiter through.
#[derive(Default)]
struct Gate(std::sync::Mutex<bool>, std::sync::Condvar);

impl Gate {
    fn wait(&self) {
        let open = self.0.lock().unwrap();
        drop(self.1.wait_while(open, |open| !*open).unwrap());
    }

    fn open(&self) {
        *self.0.lock().unwrap() = true;
        self.1.notify_all();
    }
}

/// Opens a gate when dropped, so that a failing test releases the batch it holds.
struct OpenOnDrop(std::sync::Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[test]
fn with_a_buffer_bound_a_full_receiver_stops_reading_until_batches_catch_up() {
    use std::sync::Arc;
    use std::time::Duration;

    let (listener, port) = listen();
    let clock = dstream::ManualClock::default();
    let ssc = dstream::StreamingContext::builder()
        .config(StreamingConfig {
            batch_interval: Duration::from_secs(1),
            parallelism: Parallelism::threads_exactly(2),
            max_buffered_records: Some(1_000),
            ..StreamingConfig::default()
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    let lines = ssc.socket_text_stream("127.0.0.1", port);
    let gate = Arc::new(Gate::default());
    let _release = OpenOnDrop(gate.clone());
    let held = gate.clone();
    let (reached, at_gate) = std::sync::mpsc::channel();
    lines
        .foreach_rdd(move |_, time| {
            if time.as_millis() == 1000 {
                let _ = reached.send(());
                held.wait();
            }
        })
        .unwrap();
    let counts = collect(&lines.count());
    ssc.start().unwrap();
    let mut server = accept(&listener);
    server.write_all(b"first\n").unwrap();
    ssc.await_records_received(1, PATIENCE).unwrap();
    clock.advance(Duration::from_secs(1)); // batch 1 starts, and waits at the gate
    // Batch 1 has been cut (it holds "first" only) before the flood below: on a busy
    // machine the generator could otherwise cut it late, with part of the flood in it.
    at_gate.recv_timeout(PATIENCE).unwrap();

    // Write as fast as the receiver reads, until the socket is full: far more than
    // the kernel's socket buffers hold.
    let line = b"line 0000000\n";
    let total_lines = 2_000_000;
    let total_bytes = total_lines * line.len();
    let chunk = line.repeat(5_000);
    let write_from = move |server: &mut TcpStream, sent: &mut usize| -> std::io::Result<()> {
        while *sent < total_bytes {
            let start = *sent % chunk.len();
            let end = chunk.len().min(start + total_bytes - *sent);
            *sent += server.write(&chunk[start..end])?;
        }
        Ok(())
    };
    let mut sent = 0;
    server.set_nonblocking(true).unwrap();
    match write_from(&mut server, &mut sent) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the receiver kept reading: {other:?}"),
    }
    assert!(sent < total_bytes);
    // The receiver stores at most the bound, and reads no more while no batch is cut:
    // the lines already sent stay unread (without a bound it would read them all).
    let bound = 1 + 1_000;
    let sent_lines = (sent / line.len()) as u64;
    assert!(sent_lines > 2 * bound);
    let more = ssc.await_records_received(bound + 1, Duration::from_millis(300));
    assert!(more.is_err(), "the receiver read on: {more:?}");
    assert_eq!(ssc.peak_records_buffered(), 1_000);

    gate.open();
    server.set_nonblocking(false).unwrap();
    let writer = std::thread::spawn(move || {
        write_from(&mut server, &mut sent).unwrap();
        server
    });
    let mut counted = 0;
    while counted < total_lines as u64 + 1 {
        clock.advance(Duration::from_secs(1));
        ssc.await_batch(clock.now(), PATIENCE).unwrap();
        counted = counts.lock().unwrap().iter().map(|(_, c)| c[0]).sum();
    }
    let _server = writer.join().unwrap();
    assert_eq!(ssc.peak_records_buffered(), 1_000, "the bound held");
    ssc.stop(false).unwrap();
    assert_eq!(counted, total_lines as u64 + 1, "every line once");
}
