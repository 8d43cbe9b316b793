"""The LangProp trainer: config, task model, training loop, callbacks, metrics and the CLI."""

from langprop.trainer.callbacks import Callback, RichProgress
from langprop.trainer.config import (
    ConfigError,
    RunConfig,
    SandboxConfig,
    TrainerConfig,
    load_run_config,
)
from langprop.trainer.loop import Trainer
from langprop.trainer.model import LangPropModel

__all__ = [
    "Callback",
    "ConfigError",
    "LangPropModel",
    "RichProgress",
    "RunConfig",
    "SandboxConfig",
    "Trainer",
    "TrainerConfig",
    "load_run_config",
]
