"""A Python program killed with SIGKILL mid-stream and started again ends with exactly
the state of a run that was never interrupted: nothing lost, nothing counted twice."""

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

PROGRAM = os.path.join(os.path.dirname(__file__), "programs", "running_count.py")
FILES = 30

sys.path.insert(0, os.path.dirname(PROGRAM))
from running_count import file_text  # noqa: E402


def expected_state():
    counts = Counter()
    for n in range(1, FILES + 1):
        counts.update(file_text(n).split())
    return dict(counts)


def run_program(root, kill_after=None):
    """Runs the program in ``root``; SIGKILLs it after ``kill_after`` batches if given.
    Returns the batch time (ms) the program started at."""
    env = dict(os.environ, DSTREAM_CHECKPOINT_INTERVAL_MS="3000")
    child = subprocess.Popen([sys.executable, PROGRAM, str(root), str(FILES)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        start = None
        batches = 0
        for line in child.stdout:
            if line.startswith("START "):
                start = int(line.split()[1])
            elif line.startswith("BATCH "):
                batches += 1
                if kill_after is not None and batches == kill_after:
                    child.send_signal(signal.SIGKILL)
                    break
        code = child.wait(timeout=120)
        if kill_after is None:
            assert code == 0, child.stderr.read()
        else:
            assert code == -signal.SIGKILL
        return start
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def final_state(root):
    with open(os.path.join(root, "final.json")) as saved:
        return json.load(saved)


def fresh_root(tmp_path, name):
    root = tmp_path / name
    (root / "input").mkdir(parents=True)
    return root


def test_an_uninterrupted_run_counts_every_word(tmp_path):
    root = fresh_root(tmp_path, "uninterrupted")
    assert run_program(root) == 0
    assert final_state(root) == expected_state()


@pytest.mark.parametrize("kill_after", [5, 11, 17])
def test_a_program_killed_mid_stream_recovers_with_nothing_lost_or_counted_twice(
        tmp_path, kill_after):
    root = fresh_root(tmp_path, "killed")
    run_program(root, kill_after)
    assert not (root / "final.json").exists(), "killed before the end"
    resumed_at = run_program(root)
    # Killed after its fifth batch, it checkpointed at 3 s at least; the restart resumes
    # there, or later if the generator had run ahead of that checkpoint.
    assert resumed_at >= 3000, "the restart recovered a checkpoint (resumed at %d)" % resumed_at
    assert final_state(root) == expected_state()
