//! The status page over real HTTP while a stream runs: a socket source fed by a test
//! server, a stateful word count, batches stepped on a manual clock, and the JSON
//! read with a plain HTTP/1.1 GET. The browser test loads the page in headless
//! Chromium and checks what its script drew.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{Harness, PATIENCE, accept, collect, listen};
use dstream::{
    DStream, Error, Receiver, ReceiverSink, ReceiverState, StreamingConfig, StreamingContext, Time,
};
use serde_json::{Value, json};

/// An HTTP response: status code, content type and body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        assert_eq!(self.status, 200, "body: {}", self.body);
        assert_eq!(self.content_type, "application/json");
        serde_json::from_str(&self.body).expect("valid JSON")
    }
}

/// `GET path` over a fresh connection.
fn get(address: SocketAddr, path: &str) -> Answer {
    let mut stream = TcpStream::connect(address).expect("the status page accepts connections");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: body.to_string(),
    }
}

/// Asks until `check` holds: receivers change state on their own threads. Fails the
/// test after `PATIENCE`.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Running word totals over the socket's lines, named `totals`.
fn word_totals(lines: &DStream<String>) -> DStream<(String, u64)> {
    lines
        .flat_map(|line| line.split(' ').map(String::from).collect::<Vec<_>>())
        .map(|word| (word, 1u64))
        .update_state_by_key(|new: &[u64], total: Option<u64>| {
            Some(new.iter().sum::<u64>() + total.unwrap_or(0))
        })
        .name("totals")
}

/// A started word count on a socket, its status page, and the connected server.
struct Running {
    h: Harness,
    page: SocketAddr,
    server: TcpStream,
    listener: TcpListener,
    /// Lines sent so far.
    sent: u64,
    _checkpoints: tempfile::TempDir,
}

fn start_word_count() -> Running {
    let (listener, port) = listen();
    let (h, page) = Harness::with_status_page();
    let checkpoints = tempfile::tempdir().unwrap();
    h.ssc.checkpoint(checkpoints.path()).unwrap();
    let totals = word_totals(&h.ssc.socket_text_stream("127.0.0.1", port));
    collect(&totals);
    h.ssc.start().unwrap();
    let server = accept(&listener);
    Running {
        h,
        page,
        server,
        listener,
        sent: 0,
        _checkpoints: checkpoints,
    }
}

impl Running {
    /// Sends `text` and runs one batch once its `lines` lines have arrived.
    fn batch_of(&mut self, text: &str, lines: u64) {
        self.server.write_all(text.as_bytes()).unwrap();
        self.sent += lines;
        self.h
            .ssc
            .await_records_received(self.sent, PATIENCE)
            .unwrap();
        self.h.run_batch();
    }

    fn receiver_state(&self) -> Value {
        get(self.page, "/api/v1/receivers").json()[0]["state"].clone()
    }
}

#[test]
fn the_json_api_reports_exact_batches_receivers_and_state_sizes() {
    let mut run = start_word_count();
    eventually("the receiver to report its connection", || {
        (run.receiver_state() == "connected").then_some(())
    });
    run.batch_of("a b a\n", 1);
    run.batch_of("b c\nc\n", 2);
    run.batch_of("", 0);

    let batches = get(run.page, "/api/v1/batches").json();
    assert_eq!(batches["batch_interval_ms"], 1000);
    assert_eq!(batches["active"], json!([]));
    let completed = batches["completed"].as_array().unwrap();
    let fields = |name: &str| -> Vec<Value> { completed.iter().map(|b| b[name].clone()).collect() };
    // Newest first; the manual clock does not move while a batch runs: no delays.
    assert_eq!(
        fields("batch_time_ms"),
        vec![json!(3000), json!(2000), json!(1000)]
    );
    assert_eq!(fields("records"), vec![json!(0), json!(2), json!(1)]);
    assert_eq!(
        fields("input_rate"),
        vec![json!(0.0), json!(2.0), json!(1.0)]
    );
    assert_eq!(fields("status"), vec![json!("completed"); 3]);
    for delay in [
        "scheduling_delay_ms",
        "processing_delay_ms",
        "total_delay_ms",
    ] {
        assert_eq!(fields(delay), vec![json!(0); 3], "{delay}");
    }
    assert_eq!(completed[1]["submission_time_ms"], 2000);
    assert_eq!(completed[1]["processing_start_ms"], 2000);
    assert_eq!(completed[1]["processing_end_ms"], 2000);
    assert_eq!(completed[1]["output_operations"], 1);
    assert_eq!(completed[1]["failure"], Value::Null);
    let limited = get(run.page, "/api/v1/batches?limit=1").json();
    assert_eq!(limited["completed"].as_array().unwrap().len(), 1);
    assert_eq!(limited["completed"][0]["batch_time_ms"], 3000);

    let streams = get(run.page, "/api/v1/streams").json();
    assert_eq!(
        streams,
        json!([{
            "stream_id": 3,
            "stream": "#3 update_state_by_key \"totals\"",
            "operation": "update_state_by_key",
            "keys": 3,
        }])
    );

    let receivers = get(run.page, "/api/v1/receivers").json();
    assert_eq!(
        receivers,
        json!([{
            "stream_id": 0,
            "stream": "#0 socket_text_stream",
            "source": format!("127.0.0.1:{}", run.listener.local_addr().unwrap().port()),
            "state": "connected",
            "since_ms": 0,
            "last_error": null,
            "last_error_ms": null,
            "last_error_resolved": false,
            "failed_attempts": 0,
        }])
    );

    let summary = get(run.page, "/api/v1/summary").json();
    for (field, value) in [
        ("status", json!("active")),
        ("batch_interval_ms", json!(1000)),
        ("parallelism", json!(2)),
        ("first_batch_time_ms", json!(1000)),
        ("batches_completed", json!(3)),
        ("batches_failed", json!(0)),
        ("records_processed", json!(3)),
        ("active_batches", json!(0)),
        ("receivers", json!(1)),
        ("stateful_streams", json!(1)),
        ("retained_batches", json!(1000)),
    ] {
        assert_eq!(summary[field], value, "{field}");
    }
    assert!(summary["started_at_ms"].as_i64().unwrap() > 0);

    // The server goes away: the receiver says it is retrying, and why.
    drop(run.server);
    drop(run.listener);
    let receiver = eventually("the receiver to report the lost server", || {
        let receiver = get(run.page, "/api/v1/receivers").json()[0].clone();
        (receiver["state"] == "retrying").then_some(receiver)
    });
    assert_eq!(receiver["since_ms"], 3000);
    let error = receiver["last_error"].as_str().unwrap();
    assert!(
        error.contains("closed the connection") || error.contains("cannot connect"),
        "{error}"
    );
    assert!(receiver["failed_attempts"].as_u64().unwrap() >= 1);
    assert_eq!(receiver["last_error_resolved"], false);

    run.h.ssc.stop(false).unwrap();
    let statuses = run.h.ssc.receiver_statuses();
    assert_eq!(statuses[0].state, ReceiverState::Stopped);
    assert_eq!(run.h.ssc.state_sizes()[0].keys, 3);
}

#[test]
fn the_page_is_one_self_contained_document_and_unknown_paths_are_404() {
    let run = start_word_count();
    let page = get(run.page, "/");
    assert_eq!(page.status, 200);
    assert_eq!(page.content_type, "text/html; charset=utf-8");
    assert!(page.body.contains("<svg") || page.body.contains("timeline("));
    for external in ["http://", "https://", "src=", "<link"] {
        assert!(
            !page.body.contains(external),
            "the page refers to {external}"
        );
    }
    assert_eq!(get(run.page, "/api/v1/nothing").status, 404);
    run.h.ssc.stop(false).unwrap();
}

#[test]
fn a_taken_port_is_a_clear_error_and_a_free_one_is_served_from_the_start() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let err = StreamingContext::from_config(StreamingConfig {
        status_page: Some(address),
        ..Harness::config(Duration::from_secs(1))
    })
    .unwrap_err();
    let address = address.to_string();
    assert!(
        matches!(&err, Error::StatusPageAddress { address: a, .. } if *a == address),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("cannot serve the status page on {address}: ")),
        "{message}"
    );

    let (h, page) = Harness::with_status_page();
    collect(&h.ssc.rate_stream(1));
    h.ssc.start().unwrap();
    h.run_batches(2);
    let summary = get(page, "/api/v1/summary").json();
    assert_eq!(summary["status"], "active");
    assert_eq!(summary["batches_completed"], 2);
    assert_eq!(summary["records_processed"], 2);
    assert_eq!(summary["receivers"], 0);
    h.ssc.stop(false).unwrap();
    assert_eq!(h.ssc.status_page_address(), Some(page));
    assert!(Harness::seconds().ssc.status_page_address().is_none());
}

/// A user receiver that fails on its first run and then delivers one record.
struct FailsOnce {
    failed: bool,
}

impl Receiver for FailsOnce {
    type Item = u32;

    fn receive(
        &mut self,
        sink: &ReceiverSink<u32>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if !self.failed {
            self.failed = true;
            return Err("not ready yet".into());
        }
        sink.store(7);
        while !sink.is_stopped() {
            std::thread::yield_now();
        }
        Ok(())
    }
}

#[test]
fn a_user_receiver_reports_its_failure_then_its_recovery() {
    let h = Harness::seconds();
    collect(&h.ssc.receiver_stream(FailsOnce { failed: false }));
    assert!(h.ssc.receiver_statuses().is_empty());
    h.ssc.start().unwrap();
    h.ssc.await_records_received(1, PATIENCE).unwrap();
    let status = h.ssc.receiver_statuses().remove(0);
    assert_eq!(status.stream_id, 0);
    assert_eq!(status.stream, "#0 receiver_stream");
    assert!(status.source.ends_with("FailsOnce"), "{}", status.source);
    assert_eq!(status.state, ReceiverState::Connected);
    assert_eq!(
        status.last_error.as_deref(),
        Some("the receiver failed: not ready yet")
    );
    assert_eq!(status.last_error_time, Some(Time::from_millis(0)));
    assert_eq!(status.failed_attempts, 0);
    assert_eq!(h.run_batch().num_records, 1);
    h.ssc.stop(true).unwrap();
    assert_eq!(h.ssc.receiver_statuses()[0].state, ReceiverState::Stopped);
}

/// A started context whose only input is a [`FailsOnce`] receiver, its status page,
/// once the receiver delivered after its failure.
fn start_recovered_receiver() -> (Harness, SocketAddr) {
    let (h, page) = Harness::with_status_page();
    collect(&h.ssc.receiver_stream(FailsOnce { failed: false }));
    h.ssc.start().unwrap();
    h.ssc.await_records_received(1, PATIENCE).unwrap();
    (h, page)
}

#[test]
fn a_reconnected_receiver_reports_its_last_error_as_resolved() {
    let (h, page) = start_recovered_receiver();
    let receiver = eventually("the receiver to report its connection", || {
        let receiver = get(page, "/api/v1/receivers").json()[0].clone();
        (receiver["state"] == "connected").then_some(receiver)
    });
    // The error stays as history, marked resolved: it is not what is wrong now.
    assert_eq!(receiver["last_error"], "the receiver failed: not ready yet");
    assert_eq!(receiver["last_error_ms"], 0);
    assert_eq!(receiver["last_error_resolved"], true);
    assert_eq!(receiver["failed_attempts"], 0);
    assert!(h.ssc.receiver_statuses()[0].last_error_resolved);

    // Times on the page are 24-hour: the script formats them itself instead of
    // asking the browser's locale, which gives "8:54:19 PM" in en-US.
    let html = get(page, "/").body;
    for locale_time in [
        "toLocaleTimeString",
        "toLocaleString()",
        "toLocaleDateString",
    ] {
        assert!(!html.contains(locale_time), "the page uses {locale_time}");
    }
    h.ssc.stop(false).unwrap();
}

/// Chromium's DOM of `url` after its scripts ran for a few seconds of virtual time.
fn chromium_dom(url: &str) -> String {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            std::process::Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|out| out.status.success())
        })
        .expect(
            "this test needs Chromium: install it (`apt-get install chromium` on Debian), or run `bash .ci/test`, which does",
        );
    let profile = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The part of `dom` from the element with `id` to the end of that element.
fn element<'a>(dom: &'a str, tag: &str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element #{id} in the page:\n{dom}"));
    let end = dom[start..].find(&format!("</{tag}>")).unwrap() + start;
    &dom[start..end]
}

/// Whether `text` is a 24-hour `HH:MM:SS`.
fn is_24_hour_clock(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[0] < "24"
}

#[test]
#[ignore = "needs chromium: run bash .ci/test"]
fn chromium_renders_the_charts_and_the_batch_table_with_live_data() {
    let mut run = start_word_count();
    eventually("the receiver to report its connection", || {
        (run.receiver_state() == "connected").then_some(())
    });
    let records = [3, 1, 4, 1, 5];
    for (k, &n) in records.iter().enumerate() {
        let text: String = (0..n).map(|i| format!("w{k} x{i}\n")).collect();
        run.batch_of(&text, n);
    }

    let dom = chromium_dom(&format!("http://{}/", run.page));

    let input_rate = element(&dom, "svg", "timeline-input-rate");
    let values: Vec<&str> = input_rate
        .split("data-value=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(values, vec!["3", "1", "4", "1", "5"]);
    assert!(input_rate.contains("<polyline class=\"line\""));
    for chart in [
        "timeline-scheduling-delay",
        "timeline-processing-delay",
        "timeline-total-delay",
    ] {
        assert_eq!(
            element(&dom, "svg", chart)
                .matches("class=\"point\"")
                .count(),
            5
        );
    }
    let histogram = element(&dom, "svg", "histogram-input-rate");
    let counts: u64 = histogram
        .split("data-count=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].parse::<u64>().unwrap())
        .sum();
    assert_eq!(counts, 5);

    let table = element(&dom, "tbody", "completed-batches");
    for (k, n) in records.iter().enumerate() {
        let time = (k + 1) * 1000;
        let row = format!("<tr data-batch-time=\"{time}\">");
        let at = table
            .find(&row)
            .unwrap_or_else(|| panic!("no row for batch {time}:\n{table}"));
        let row = &table[at..at + table[at..].find("</tr>").unwrap()];
        assert!(
            row.contains(&format!("<td class=\"num records\">{n}</td>")),
            "{row}"
        );
    }
    assert!(
        element(&dom, "tbody", "receivers")
            .contains("<span class=\"pill connected\">connected</span>")
    );
    // Words: w0..w4 and x0..x4.
    assert!(element(&dom, "tbody", "streams").contains("<td class=\"num keys\">10</td>"));
    assert!(dom.contains("<span id=\"status\" class=\"pill active\">active</span>"));

    // Every time is 24-hour, the header's too: `updated 14:03:59`, not `2:03:59 PM`.
    let updated = element(&dom, "span", "updated");
    let updated = &updated[updated.find('>').unwrap() + 1..];
    assert!(
        updated
            .strip_prefix("updated ")
            .is_some_and(is_24_hour_clock),
        "{updated}"
    );
    let summary = element(&dom, "div", "summary");
    let since = &summary[summary.find(" since ").expect(summary) + " since ".len()..];
    let (date, time) = (
        since.get(..10).unwrap_or(""),
        since.get(11..19).unwrap_or(""),
    );
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && is_24_hour_clock(time),
        "{summary}"
    );
    run.h.ssc.stop(false).unwrap();
}

#[test]
#[ignore = "needs chromium: run bash .ci/test"]
fn chromium_shows_a_resolved_error_as_history() {
    let (h, page) = start_recovered_receiver();
    eventually("the receiver to report its connection", || {
        (get(page, "/api/v1/receivers").json()[0]["state"] == "connected").then_some(())
    });
    let dom = chromium_dom(&format!("http://{page}/"));
    let receivers = element(&dom, "tbody", "receivers");
    assert!(
        receivers.contains(
            "<span class=\"resolved\">last error (resolved): the receiver failed: not ready yet ("
        ),
        "{receivers}"
    );
    assert!(!receivers.contains("class=\"error\""), "{receivers}");
    h.ssc.stop(false).unwrap();
}
