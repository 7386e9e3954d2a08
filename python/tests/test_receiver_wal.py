"""The receivers' write-ahead log from Python: a socket word count recovered with
getOrCreate is killed with SIGKILL while it holds lines that no batch has taken, and
after batches its last checkpoint does not hold, and ends with exactly the counts of
every line it received."""

import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter

PROGRAM = os.path.join(os.path.dirname(__file__), "programs", "socket_running_count.py")
ROUNDS = 10
LINES_PER_ROUND = 20


def round_lines(n):
    return ["w%d w%d x" % ((n * 7 + i) % 11, i % 5) for i in range(LINES_PER_ROUND)]


def expected_state():
    counts = Counter()
    for n in range(ROUNDS):
        for line in round_lines(n):
            counts.update(line.split(" "))
    return dict(counts)


class Program:
    """The program, started in ``root``, and the test's side of its connection."""

    def __init__(self, root, server):
        total = sum(expected_state().values())
        # The log is on by default; an environment that turns it off must not decide.
        env = dict(os.environ, DSTREAM_CHECKPOINT_INTERVAL_MS="3000",
                   DSTREAM_RECEIVER_WRITE_AHEAD_LOG="true")
        self.child = subprocess.Popen(
            [sys.executable, PROGRAM, str(root), str(server.getsockname()[1]), str(total)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env)
        self.connection, _ = server.accept()
        self.sent = 0
        self.wait_for("READY")

    def wait_for(self, reply):
        for line in self.child.stdout:
            if line.strip() == reply:
                return
        raise AssertionError("the program ended before it said %s" % reply)

    def command(self, command, reply):
        self.child.stdin.write(command + "\n")
        self.child.stdin.flush()
        self.wait_for(reply)

    def send_round(self, n):
        self.connection.sendall("".join(line + "\n" for line in round_lines(n)).encode())
        self.sent += LINES_PER_ROUND
        self.command("expect %d" % self.sent, "GOT")

    def kill(self):
        self.child.send_signal(signal.SIGKILL)
        assert self.child.wait(timeout=30) == -signal.SIGKILL
        self.connection.close()

    def finish(self):
        self.child.stdin.write("finish\n")
        self.child.stdin.flush()
        assert self.child.wait(timeout=120) == 0
        self.connection.close()


def run(root, kills):
    with socket.create_server(("127.0.0.1", 0)) as server:
        program = Program(root, server)
        for n in range(ROUNDS):
            program.send_round(n)
            if (n, "before its batch") in kills:
                program.kill()
                program = Program(root, server)
            program.command("tick", "TICKED")
            if (n, "after its batch") in kills:
                program.kill()
                program = Program(root, server)
        program.finish()
    with open(os.path.join(root, "final.json")) as state:
        return json.load(state)


def test_a_socket_program_killed_at_any_point_loses_no_line_it_received(tmp_path):
    assert run(tmp_path / "uninterrupted", set()) == expected_state()
    kills = {(1, "before its batch"), (2, "before its batch"), (4, "after its batch"),
             (7, "before its batch")}
    assert run(tmp_path / "killed", kills) == expected_state()
