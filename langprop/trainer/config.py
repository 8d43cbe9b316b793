"""Trainer and run configuration: dataclasses loadable from YAML with dotted overrides (OmegaConf)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A user-facing configuration problem; the message names the file or field."""


@dataclass
class TrainerConfig:
    """The LangProp loop. Defaults follow the reference (n_responses=2, n_top_choices=3, max_keep=4)."""

    epochs: int = 1
    batch_size: int = 8
    n_responses: int = 2  # LLM answers per update prompt
    n_top_choices: int = 3  # policies updated per step
    n_setup_responses: int | None = None  # answers to the setup prompt; default n_top_choices * n_responses
    max_keep: int = 4  # population cap after reranking
    decay: float = 0.0  # priority tracker decay (0: this batch only, 1: cumulative mean)
    exception_score: float = -1.0
    n_failure_examples: int = 3  # failing samples shown in each update prompt
    seed: int = 0
    val_every: int = 1  # validate every N steps (0: only at the end)
    checkpoint_every: int = 1
    keep_checkpoints: int | None = None  # keep only the newest N step dirs (None: all)
    max_steps: int | None = None  # stop after this many steps (resume continues from there)
    run_dir: str = "runs/langprop"
    progress: bool = True
    tensorboard: bool = True  # only when the tensorboard package is importable
    max_output_chars: int = 1500  # truncation of inputs/outputs/tracebacks inside prompts
    # Also record validation scores into a "val" priority tracker, so priority = train + val (the
    # reference's several-trackers design): a policy that generalises outranks one that only fits
    # the batches. The ranking is refreshed after each validation. False: rank by train scores only.
    val_tracker: bool = False

    def validate(self) -> None:
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "n_responses": self.n_responses >= 1,
            "n_top_choices": self.n_top_choices >= 1,
            "max_keep": self.max_keep >= 1,
            "decay": 0.0 <= self.decay <= 1.0,
            "n_failure_examples": self.n_failure_examples >= 1,
            "val_every": self.val_every >= 0,
            "checkpoint_every": self.checkpoint_every >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"trainer.{name}: invalid value {getattr(self, name)!r}")
        if self.n_setup_responses is not None and self.n_setup_responses < 1:
            raise ConfigError(f"trainer.n_setup_responses: invalid value {self.n_setup_responses!r}")
        if self.max_steps is not None and self.max_steps < 0:
            raise ConfigError(f"trainer.max_steps: invalid value {self.max_steps!r}")


@dataclass
class SandboxConfig:
    """Worker pool settings, turned into ``SandboxLimits`` when the pool is built."""

    n_workers: int | None = None
    call_timeout_s: float = 5.0
    batch_deadline_s: float | None = None
    memory_mb: int = 2048
    cpu_s: int = 60
    stdout_cap_bytes: int = 16_384
    isolate: bool = True  # jail policy processes: no network, read-only Python + packages, private /tmp
    require_jail: bool = False  # refuse to train where the kernel cannot provide the jail


def sandbox_limits(config: SandboxConfig) -> Any:
    """The ``SandboxLimits`` for a ``SandboxConfig``; its own validation errors become ConfigError."""
    from langprop.sandbox import SandboxError, SandboxLimits

    try:
        return SandboxLimits(
            call_timeout_s=config.call_timeout_s,
            batch_deadline_s=config.batch_deadline_s,
            memory_mb=config.memory_mb,
            cpu_s=config.cpu_s,
            stdout_cap_bytes=config.stdout_cap_bytes,
            isolate=config.isolate,
            require_jail=config.require_jail,
        )
    except SandboxError as exc:
        raise ConfigError(str(exc).replace("SandboxLimits.", "sandbox.")) from None


def _llm_config_cls() -> type:
    from langprop.llm import LLMConfig

    return LLMConfig


@dataclass
class RunConfig:
    """Everything one ``python -m langprop train`` needs; ``task`` holds the example's own options."""

    example: str = "sudoku"
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    llm: Any = field(default_factory=lambda: _llm_config_cls()())
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    task: dict[str, Any] = field(default_factory=dict)


def _describe(exc: OmegaConfBaseException, source: str) -> str:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    key = getattr(exc, "full_key", None)
    return f"{source}: {key + ': ' if key else ''}{first}"


def _structured_base() -> Any:
    base = OmegaConf.structured(RunConfig)
    # `llm` is typed Any above (so this module imports without the llm package); make it typed here.
    base.llm = OmegaConf.structured(_llm_config_cls())
    return base


def normalize_overrides(args: list[str]) -> list[str]:
    """Accept ``--a.b value``, ``--a.b=value`` and ``a.b=value``; return OmegaConf dotlist items."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            arg = arg[2:]
            if "=" not in arg:
                if i + 1 >= len(args):
                    raise ConfigError(f"command line: --{arg} needs a value")
                arg = f"{arg}={args[i + 1]}"
                i += 1
        if "=" not in arg:
            raise ConfigError(f"command line: cannot read {arg!r}; use --key value or key=value")
        out.append(arg)
        i += 1
    return out


def load_run_config(
    yaml_path: str | Path | None = None,
    overrides: list[str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> RunConfig:
    """Merge dataclass defaults ← ``defaults`` (an example's preset) ← YAML file ← dotted overrides."""
    cfg = _structured_base()
    try:
        if defaults:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(defaults))
    except OmegaConfBaseException as exc:
        raise ConfigError(_describe(exc, "example defaults")) from None
    if yaml_path is not None:
        path = Path(yaml_path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = OmegaConf.load(path)
            cfg = OmegaConf.merge(cfg, loaded)
        except OmegaConfBaseException as exc:
            raise ConfigError(_describe(exc, str(path))) from None
        except Exception as exc:  # YAML syntax errors
            raise ConfigError(f"{path}: {str(exc).splitlines()[0]}") from None
    if overrides:
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(normalize_overrides(overrides)))
        except OmegaConfBaseException as exc:
            raise ConfigError(_describe(exc, "command line")) from None
    try:
        run = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(_describe(exc, "config")) from None
    except ValueError as exc:  # a dataclass's own validation (e.g. LLMConfigError names its field)
        raise ConfigError(str(exc)) from None
    run.trainer.validate()
    sandbox_limits(run.sandbox)  # fail at load time, naming the field
    return run


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, JSON-serialisable dict of a (nested) dataclass config."""
    return asdict(cfg) if is_dataclass(cfg) else dict(cfg)
