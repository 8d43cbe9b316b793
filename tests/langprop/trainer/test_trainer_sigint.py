"""A real Ctrl-C (SIGINT) to ``python -m langprop train`` while it waits for the LLM: the last completed
step is checkpointed, the exit status is 130, and running the command again resumes to the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from langprop.checkpoint import load_checkpoint
from langprop.examples import get_example
from langprop.llm.testing import fake_openai  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[3]
FIXTURE = yaml.safe_load((get_example("cartpole").recorded_dir / "answers.yaml").read_text())["entries"]


def answer(messages, index, serial):
    if "## Current code" in messages[-1]["content"]:
        return FIXTURE[-1]["answers"][0]
    return FIXTURE[0]["answers"][index % len(FIXTURE[0]["answers"])]


def test_sigint_during_an_llm_request_checkpoints_and_resumes(fake_openai, tmp_path):  # noqa: F811
    fake_openai.answer = answer
    fake_openai.delay_s = 1.0
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "langprop", "train", "--example", "cartpole", "--llm.base_url",
           fake_openai.base_url, "--llm.model", "fake-model", "--llm.concurrency", "1",
           "--trainer.run_dir", str(run_dir), "--sandbox.n_workers", "1"]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while fake_openai.request_count < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the second request is step 1's update prompt, now being answered
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "stopped at step 0: interrupted" in out
    assert load_checkpoint(run_dir / "checkpoints").step == 0
    assert json.loads((run_dir / "run_state.json").read_text())["stop_reason"] == "interrupted"

    fake_openai.delay_s = 0.0
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "stopped at step 3: completed" in done.stdout and "validation score 500" in done.stdout
