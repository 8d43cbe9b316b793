"""``python -m langprop``: train an example against any OpenAI-compatible endpoint, or evaluate a checkpoint.

    python -m langprop train --example sudoku --llm.backend replay
    python -m langprop train --example cartpole --llm.base_url http://127.0.0.1:8080/v1 --llm.model gemma3-270m
    python -m langprop train --config run.yaml --trainer.epochs 3
    python -m langprop eval runs/sudoku/checkpoints --split val

Options after the known flags are dotted config overrides (``--trainer.batch_size 4`` or
``trainer.batch_size=4``). User errors end with one line on stderr and a non-zero exit.

Exit status: 0 training completed (or stopped at ``trainer.max_steps``), 2 user error (config,
run dir, checkpoint), 3 LLM unavailable, 4 sandbox cannot start, 5 stopped early because the LLM
budget was exhausted (the last completed step is checkpointed; rerun to resume), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from langprop.trainer.config import ConfigError, RunConfig, config_to_dict, load_run_config, sandbox_limits

log = logging.getLogger("langprop")

EXIT_USER_ERROR = 2
EXIT_LLM_UNAVAILABLE = 3
EXIT_SANDBOX = 4
EXIT_STOPPED_EARLY = 5  # LLM budget exhausted: stopped at the last completed step, checkpoint written
EXIT_INTERRUPTED = 130


OVERRIDES_HELP = """config overrides (any field of RunConfig; --key value, --key=value or key=value):
  --llm.backend replay              serve the example's recorded (HAND-WRITTEN) answers offline
  --llm.base_url URL --llm.model M  any OpenAI-compatible endpoint (key from env llm.api_key_env)
  --llm.budget_tokens N             hard token budget; training stops cleanly when it is spent
  --trainer.run_dir DIR             checkpoints, metrics.csv/jsonl, curves.png, failures.jsonl, llm/
  --trainer.epochs N --trainer.batch_size N --trainer.n_responses N --trainer.n_top_choices N
  --trainer.max_keep N --trainer.n_failure_examples N --trainer.seed N --trainer.max_steps N
  --trainer.val_tracker true        rank by train + validation priority (default: train only)
  --sandbox.n_workers N --sandbox.call_timeout_s S
  --task.n_train N --task.n_val N   the example's own options (sudoku: sizes, clue_fraction, seed)

exit status:
  0    training completed (or stopped at trainer.max_steps)
  2    user error (bad config, run dir or checkpoint), one line on stderr
  3    LLM unavailable (endpoint unreachable after retries)
  4    the sandbox cannot start
  5    stopped early: the LLM budget is exhausted; the last completed step is checkpointed and the
       same command resumes from it (with a larger --llm.budget_tokens / --llm.budget_cost)
  130  interrupted (Ctrl-C); the last completed step is checkpointed
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m langprop", description="LangProp: code as trainable parameters.",
                                     allow_abbrev=False)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train an example's policy; extra args are dotted config overrides",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=OVERRIDES_HELP,
        allow_abbrev=False,
    )
    train.add_argument("--example", help="example to train (sudoku, cartpole); default from the config, else sudoku")
    train.add_argument("--config", help="YAML run config (fields of RunConfig)")
    train.add_argument("--no-resume", action="store_true", help="start afresh: move run_dir/checkpoints aside to checkpoints.old-<UTC time> and "
                       "delete the evaluation cache")
    ev = sub.add_parser("eval", help="evaluate the policies of a checkpoint on an example's data", allow_abbrev=False)
    ev.add_argument("checkpoint", help="checkpoint dir (run_dir/checkpoints, or one step_* dir)")
    ev.add_argument("--split", choices=("train", "val"), default="val")
    ev.add_argument("--top", type=int, default=None, help="evaluate only the best K policies")
    ev.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    sub.add_parser("examples", help="list the runnable examples")
    return parser


def _example_name(args: argparse.Namespace, overrides: list[str]) -> str:
    if getattr(args, "example", None):
        return args.example
    for item in overrides:
        key, _, value = item.lstrip("-").partition("=")
        if key == "example" and value:
            return value
    if "--example" in overrides:  # "--example x" left in the overrides
        i = overrides.index("--example")
        if i + 1 < len(overrides):
            return overrides[i + 1]
    if getattr(args, "config", None):
        path = Path(args.config)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None
        if isinstance(data, dict) and data.get("example"):
            return str(data["example"])
    return "sudoku"


def _setup_logging(verbose: int) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def cmd_train(args: argparse.Namespace, overrides: list[str]) -> int:
    from langprop.examples import get_example
    from langprop.llm import LLMClient
    from langprop.trainer.loop import Trainer

    name = _example_name(args, overrides)
    example = get_example(name)
    defaults = {**example.defaults, "example": name}
    cfg: RunConfig = load_run_config(args.config, overrides, defaults=defaults)
    if cfg.example != name:
        example = get_example(cfg.example)
    options = example.options(cfg.task)
    model = example.build_model(options, cfg.trainer.exception_score)
    train, val = example.make_datasets(options)
    run_dir = Path(cfg.trainer.run_dir)
    _check_run_dir(run_dir)
    llm = LLMClient(cfg.llm, log_dir=run_dir / "llm")
    try:
        trainer = Trainer(model, llm, cfg.trainer, sandbox=cfg.sandbox, run_config=config_to_dict(cfg))
        trainer.fit(train, val, resume=not args.no_resume)
    finally:
        llm.close()
    best = trainer.best_policy()
    _out(f"run dir: {run_dir}  (checkpoints/, metrics.csv, metrics.jsonl, curves.png, failures.jsonl, llm/)")
    _out(f"stopped at step {trainer.step}: {trainer.stop_reason}")
    if best is None:
        _out("no policy survived (see failures.jsonl for the reasons)")
    else:
        val_score = trainer.val_scores.get(best.id)
        shown = "n/a" if val_score is None else f"{val_score:.4g}"
        _out(f"best policy {best.id} (generation {best.generation}): validation score {shown}")
        latest = run_dir / "checkpoints" / "latest"
        step_dir = run_dir / "checkpoints" / latest.read_text(encoding="utf-8").strip() if latest.is_file() else None
        if step_dir is not None:
            _out(f"  source: {step_dir / 'policies' / (best.id + '.py')}")
    if trainer.stop_reason == "interrupted":
        return EXIT_INTERRUPTED
    if trainer.stop_reason.startswith("LLM budget exhausted"):
        sys.stderr.write(f"stopped early at step {trainer.step}: {trainer.stop_reason} (checkpoint written; "
                         f"rerun the same command with a larger budget to resume)\n")
        return EXIT_STOPPED_EARLY
    return 0


def _check_run_dir(run_dir: Path) -> None:
    """A run dir that is a file, or cannot be created, is a user error naming the path."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"trainer.run_dir: {run_dir} exists and is not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"trainer.run_dir: cannot create {run_dir}: {exc.strerror or exc}") from None


def cmd_eval(args: argparse.Namespace, overrides: list[str]) -> int:
    from langprop.checkpoint import load_checkpoint
    from langprop.evaluation import Evaluator
    from langprop.examples import get_example
    from langprop.sandbox import SandboxPool

    data = load_checkpoint(args.checkpoint)
    stored: dict[str, Any] = dict(data.config or {})
    name = getattr(args, "example", None) or stored.get("example") or _example_name(args, overrides)
    example = get_example(name)
    base = {k: v for k, v in stored.items() if k in ("example", "trainer", "sandbox", "task")}
    cfg = load_run_config(None, overrides, defaults={**example.defaults, **base, "example": name})
    options = example.options(cfg.task)
    model = example.build_model(options, cfg.trainer.exception_score)
    train, val = example.make_datasets(options)
    samples = val if args.split == "val" else train
    policies = data.policies[: args.top] if args.top else data.policies
    limits = sandbox_limits(cfg.sandbox)
    with SandboxPool(n_workers=cfg.sandbox.n_workers, limits=limits, harness=model.harness) as pool:
        results = Evaluator(model.scorer, pool, function_name=model.spec.name).evaluate(policies, samples)
    rows = []
    for rank, policy in enumerate(policies):
        evals = results[policy.id]
        scores = [e.score for e in evals]
        mean = sum(scores) / len(scores) if scores else float("nan")
        errors = sum(1 for e in evals if e.call.status != "ok")
        rows.append({"rank": rank, "id": policy.id, "mean_score": mean, "n": len(scores), "errors": errors})
        _out(f"{rank:>3}  {policy.id:<14} {args.split} score {mean:.4g} over {len(scores)} samples ({errors} errors)")
    if args.json_out:
        from langprop.atomic import atomic_write_json

        atomic_write_json(args.json_out, {"checkpoint": str(data.path), "step": data.step, "split": args.split,
                                          "results": rows})
    return 0


def cmd_examples() -> int:
    from langprop.examples import EXAMPLES, get_example

    for name in sorted(EXAMPLES):
        example = get_example(name)
        _out(f"{name:<10} recorded answers: {example.recorded_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 user error, 3 LLM unreachable, 4 sandbox cannot run,
    5 stopped early on an exhausted LLM budget, 130 interrupted)."""
    from langprop.checkpoint import CheckpointError
    from langprop.llm import LLMConfigError, LLMUnavailable
    from langprop.prompts.template import PromptError
    from langprop.sandbox import SandboxError

    args, rest = _parser().parse_known_args(list(argv) if argv is not None else None)
    _setup_logging(args.verbose)
    try:
        if args.command == "train":
            return cmd_train(args, rest)
        if rest and args.command == "examples":
            raise ConfigError(f"command line: unexpected arguments {rest}")
        if args.command == "eval":
            return cmd_eval(args, rest)
        return cmd_examples()
    except (ConfigError, LLMConfigError, CheckpointError, PromptError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USER_ERROR
    except LLMUnavailable as exc:
        message = str(exc) if str(exc).startswith("LLM unavailable") else f"LLM unavailable: {exc}"
        sys.stderr.write(f"error: {message}\n")
        return EXIT_LLM_UNAVAILABLE
    except SandboxError as exc:
        sys.stderr.write(f"error: sandbox: {' '.join(str(exc).split())}\n")
        return EXIT_SANDBOX
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
