"""Benchmark of the LLM client's own overheads: ``python -m langprop.llm.bench [--real]``.

Against the local fake server (real HTTP, real SDK): the speed-up from concurrent prompts, the
per-request overhead of client + SDK + transcript files, the warm-cache speed-up, and the request
count of the ``n`` fallback. With ``--real``: Gemma-3 270M through llama-cpp-python (if installed).
Prints numbers and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from langprop.llm.client import LLMClient
from langprop.llm.config import LLMConfig
from langprop.llm.fake_server import FakeOpenAIServer


def _prompts(k: int, salt: str = "") -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Write function number {i}{salt}."}] for i in range(k)]


def _timed(client: LLMClient, prompts: list[list[dict[str, str]]], n: int) -> float:
    start = time.perf_counter()
    client.complete(prompts, n=n)
    return time.perf_counter() - start


def run(real: bool = False, prompts: int = 16, delay_s: float = 0.1) -> Table:
    table = Table(title="langprop.llm benchmark")
    for col in ("measure", "value", "ratio"):
        table.add_column(col)
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer(delay_s=delay_s) as slow:
        base = LLMConfig(base_url=slow.base_url, model="fake", backoff_initial_s=0.01)
        times = {}
        for conc in (1, 4, 8):
            cfg = LLMConfig(**{**base.__dict__, "concurrency": conc})
            with LLMClient(cfg) as client:
                times[conc] = _timed(client, _prompts(prompts, f" c{conc}"), 1)
        for conc in (4, 8):
            table.add_row(f"{prompts} prompts, {delay_s:.2f}s server latency, concurrency {conc} vs 1",
                          f"{times[conc]:.2f}s vs {times[1]:.2f}s", f"{times[1] / times[conc]:.1f}x faster")
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer() as fast:
        cfg = LLMConfig(base_url=fast.base_url, model="fake", concurrency=1, cache_path=str(Path(tmp) / "c.sqlite"))
        k = 100
        with LLMClient(cfg, log_dir=Path(tmp) / "run") as client:
            cold = _timed(client, _prompts(k), 1)
        with LLMClient(cfg, log_dir=Path(tmp) / "run") as client:
            warm = _timed(client, _prompts(k), 1)
        table.add_row("per request, zero-latency server (SDK + HTTP + cache + transcript)", f"{1000 * cold / k:.2f} ms", "")
        table.add_row("per answer from a warm cache (with transcript files)", f"{1000 * warm / k:.2f} ms",
                      f"{cold / warm:.1f}x faster than a request")
    for mode in ("honor", "ignore"):
        with FakeOpenAIServer(n_mode=mode) as server:
            with LLMClient(LLMConfig(base_url=server.base_url, model="fake", concurrency=1)) as client:
                client.complete(_prompts(4), n=4)
            table.add_row(f"requests for 4 prompts x n=4, server {mode}s n", str(server.request_count), "")
    if real:
        _real(table)
    return table


def _real(table: Table) -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        table.add_row("real Gemma-3 270M", "skipped: llama_cpp not installed", "")
        return
    from langprop.llm.local_server import LocalOpenAIServer, gemma_gguf_path

    start = time.perf_counter()
    with LocalOpenAIServer(gemma_gguf_path()) as server:
        ready = time.perf_counter() - start
        with LLMClient(server.llm_config(max_tokens=128, temperature=0.8, seed=0)) as client:
            elapsed = _timed(client, _prompts(3), 2)
            usage = client.usage
    table.add_row("real Gemma-3 270M: server start to ready", f"{ready:.1f}s", "")
    table.add_row("real Gemma-3 270M: 3 prompts x n=2", f"{elapsed:.1f}s, {usage['completion_tokens']} tokens",
                  f"{usage['completion_tokens'] / elapsed:.0f} completion tok/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m langprop.llm.bench", description=__doc__)
    parser.add_argument("--real", action="store_true", help="also time the real local Gemma model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("langprop.llm.openai_backend").setLevel(logging.ERROR)  # expected n-fallback warning
    Console().print(run(real=args.real))
    return 0


if __name__ == "__main__":
    sys.exit(main())
