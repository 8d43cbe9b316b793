"""Check an endpoint from the command line: ``python -m langprop.llm "Write add(a, b)" --n 2``.

Uses the same LLMConfig as training (fields as ``--field value``; base_url/model also from the
environment), prints the answers, and exits non-zero with one line on stderr when the endpoint fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

from langprop.llm.base import LLMError
from langprop.llm.client import LLMClient
from langprop.llm.config import LLMConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m langprop.llm", description=__doc__)
    p.add_argument("prompt", help="the user message")
    p.add_argument("--n", type=int, default=1, help="answers to request")
    p.add_argument("--system", default=None, help="optional system message")
    p.add_argument("--log-dir", default=None, help="write prompt/response files here")
    p.add_argument("--verbose", action="store_true")
    for f in dataclasses.fields(LLMConfig):
        if f.name in ("prices", "prefix_messages"):
            continue
        kind = {"int | None": int, "float | None": float, "float": float, "int": int}.get(str(f.type), str)
        p.add_argument(f"--{f.name}", dest=f.name, type=kind, default=None, nargs="+" if f.name == "stop" else None)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(LLMConfig) if getattr(args, f.name, None) is not None}
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": args.prompt}
    ]
    try:
        with LLMClient(LLMConfig(**overrides), log_dir=args.log_dir) as client:
            answers = client.complete([messages], n=args.n, tags=["cli"])[0]
            for answer in answers:
                sys.stdout.write(f"--- answer {answer.index} ({answer.model}, {answer.finish_reason}) ---\n{answer.text}\n")
            sys.stdout.write(json.dumps(client.usage) + "\n")
    except LLMError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
