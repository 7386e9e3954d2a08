"""The classroom notebook's programs (seed 003) run as written, with only their imports
changed, against a real TCP server: the word count, the running count and the windowed
count. Only their constants are scaled down (1 s batches instead of 10 s) so the test
takes seconds; the printed output is PySpark's."""

import ast
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

PROGRAMS = os.path.join(os.path.dirname(__file__), "programs")
TEXT = "the quick brown fox\nthe lazy dog\nthe fox\n"
EXPECTED = dict(Counter(TEXT.split()))
DASHES = "-" * 43


class LineServer:
    """`nc -lk`: every connection gets TEXT, then stays open until the test ends."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(TEXT.encode())
            self.connections.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def server():
    srv = LineServer()
    yield srv
    srv.close()


def program(name, port, timeout=5):
    """The notebook program's text, with its constants scaled down for a test."""
    with open(os.path.join(PROGRAMS, name)) as source:
        text = source.read()
    for old, new in [("batch_interval = 10", "batch_interval = 1"),
                     ("port = 9999", "port = %d" % port),
                     ("timeout=60", "timeout=%d" % timeout),
                     ("x-y, 20, 10)", "x-y, 2, 1)")]:
        assert old in text or old.startswith("x-y"), old
        text = text.replace(old, new)
    return text


def run(name, port, cwd, timeout=5, interrupt_when=None):
    path = os.path.join(str(cwd), name)
    with open(path, "w") as out:
        out.write(program(name, port, timeout))
    # Checkpoints every batch rather than every 10 s, so a short run writes some.
    env = dict(os.environ, DSTREAM_CHECKPOINT_INTERVAL_MS="1000")
    child = subprocess.Popen([sys.executable, "-u", path], cwd=str(cwd), text=True, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    try:
        for line in child.stdout:
            lines.append(line.rstrip("\n"))
            if interrupt_when is not None and interrupt_when(lines):
                child.send_signal(signal.SIGINT)
                interrupt_when = None
        code = child.wait(timeout=60)
        assert code == 0, child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return lines


def blocks(lines):
    """The pprint blocks: (time text, [records])."""
    found = []
    i = 0
    while i < len(lines):
        if lines[i] == DASHES and i + 2 < len(lines) and lines[i + 2] == DASHES:
            assert lines[i + 1].startswith("Time: ")
            records = []
            i += 3
            while lines[i] != "":
                records.append(ast.literal_eval(lines[i]))
                i += 1
            found.append((lines[i - len(records) - 2][len("Time: "):], records))
        i += 1
    return found


def test_word_count_prints_each_batch_as_pyspark(server, tmp_path):
    printed = blocks(run("notebook_word_count.py", server.port, tmp_path))
    assert len(printed) >= 3
    times = [t for t, _ in printed]
    assert all(time.strptime(t, "%Y-%m-%d %H:%M:%S") for t in times)
    non_empty = [records for _, records in printed if records]
    assert len(non_empty) == 1, printed
    assert dict(non_empty[0]) == EXPECTED
    assert len(non_empty[0]) == len(EXPECTED)


def test_running_count_keeps_its_totals(server, tmp_path):
    printed = blocks(run("notebook_running_count.py", server.port, tmp_path))
    states = [dict(records) for _, records in printed]
    first = next(i for i, state in enumerate(states) if state)
    assert states[first:] == [EXPECTED] * (len(states) - first)
    assert len(states) - first >= 2
    assert os.listdir(tmp_path / "checkpoint"), "the checkpoint directory was written"


def test_windowed_count_adds_and_takes_out_batches(server, tmp_path):
    printed = blocks(run("notebook_windowed_count.py", server.port, tmp_path))
    running = [dict(records) for _, records in printed[0::2]]
    windowed = [dict(records) for _, records in printed[1::2]]
    first = next(i for i, state in enumerate(running) if state)
    assert running[-1] == EXPECTED
    # A 2-batch window holds the lines for two batches, then they leave it. PySpark
    # reduces a window shorter than five slides afresh, so no key is left at 0.
    assert windowed[first] == EXPECTED
    assert windowed[first + 1] == EXPECTED
    assert windowed[first + 2] == {}


def test_ctrl_c_stops_the_notebook_program_gracefully(server, tmp_path):
    def counted(lines):
        return any(line == "('the', 3)" for line in lines)

    lines = run("notebook_word_count.py", server.port, tmp_path, timeout=600,
                interrupt_when=counted)
    assert "('the', 3)" in lines
