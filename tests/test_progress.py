"""Progress on stderr (bayesunlearn/io/progress.py): a live bar on a terminal; whole, throttled lines in a file,
a pipe or CI; and a stage that reports its progress that way when its stderr is not a terminal."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bayesunlearn.io import progress as bars
from bayesunlearn.io import store

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^demo: (\d+) of 5 batches done, elapsed \d\d:\d\d, remaining (\?|\d\d:\d\d)")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def not_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)


def test_a_file_gets_one_whole_line_per_step_with_elapsed_and_remaining(monkeypatch):
    monkeypatch.setattr(bars, "LINE_SECONDS", 0.0)
    stream = io.StringIO()
    assert list(bars.progress(range(5), desc="demo", unit="batch", stream=stream)) == list(range(5))
    text = stream.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert [int(LINE.match(line).group(1)) for line in lines] == [0, 1, 2, 3, 4, 5], text
    assert LINE.match(lines[-1]).group(2) != "?"  # once a step is done, the time left is estimated


def test_a_file_gets_at_most_a_line_per_interval():
    stream = io.StringIO()  # the default interval (seconds) is far longer than this loop
    for _ in bars.progress(range(1000), desc="demo", unit="batch", stream=stream):
        pass
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("demo: 0 of 1000") and lines[1].startswith("demo: 1000 of 1000")


def test_a_new_phase_is_a_line_at_once_with_the_current_count():
    stream = io.StringIO()  # the default interval: only phases, the first and the last line show
    bar = bars.progress(["a", "b", "c"], desc="bench", unit="part", stream=stream)
    for part in bar:
        bars.phase(bar, part)
    lines = stream.getvalue().splitlines()
    assert [re.match(r"bench: (\d) of 3 parts done, .*?(, \w)?$", line).groups() for line in lines] == [
        ("0", None), ("0", ", a"), ("1", ", b"), ("2", ", c"), ("3", ", c")], lines


def test_a_terminal_gets_tqdms_live_bar_unless_ci(monkeypatch):
    stream = Terminal()
    for _ in bars.progress(range(3), desc="demo", unit="batch", stream=stream):
        pass
    text = stream.getvalue()
    assert "\r" in text and re.search(r"demo: 100%.*3/3 \[\d\d:\d\d<\d\d:\d\d", text), text
    monkeypatch.setenv("CI", "true")
    ci = Terminal()
    for _ in bars.progress(range(3), desc="demo", unit="batch", stream=ci):
        pass
    assert "\r" not in ci.getvalue() and ci.getvalue().splitlines()[-1].startswith("demo: 3 of 3 batches done")


def test_phases_are_named_and_a_quick_loop_with_a_delay_says_nothing():
    stream = io.StringIO()
    with bars.progress(total=2, desc="evaluate m", stream=stream, postfix="comparing") as bar:
        bars.advance(bar, "timing")
        bar.update()
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(", comparing") and lines[1].startswith("evaluate m: 1 of 2 steps done")
    assert lines[1].endswith(", timing") and lines[-1].startswith("evaluate m: 2 of 2 steps done")
    quiet = io.StringIO()
    for _ in bars.progress(range(50), desc="sum", stream=quiet, delay=bars.PATIENCE):
        pass
    assert quiet.getvalue() == ""


def test_the_retrain_stage_reports_seeds_on_stderr_and_keeps_stdout_clean(tmp_path):
    """`python -m stages.retrain` with stderr a pipe: plain progress lines naming the seeds, no bar."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"]["hidden"] = [4]
    params["train"].update(adam_steps=50, polish_iterations=5)
    params["retrain"]["seeds"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ids = [f"rec-{i:06d}" for i in range(12)]
    store.save_table(tmp_path / "data/split/retained.csv",
                     pd.DataFrame({"record_id": ids, "x": [0.2 * i - 1.1 for i in range(12)],
                                   "y": [(-1) ** i * 0.1 + 0.05 * i for i in range(12)]}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CI", None)
    result = subprocess.run([sys.executable, "-m", "stages.retrain"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "\r" not in result.stderr
    steps = [line for line in result.stderr.splitlines() if line.startswith("retrain from scratch: ")]
    assert steps[0].startswith("retrain from scratch: 0 of 2 seeds done, elapsed"), result.stderr
    assert re.match(r"retrain from scratch: 2 of 2 seeds done, elapsed \d\d:\d\d, remaining \d\d:\d\d$", steps[-1])
    assert (tmp_path / "models/retrained/maps/map_1.npz").exists()
