"""The LangProp training loop: setup → (evaluate → update top policies → evaluate children → rerank →
checkpoint → validate) per batch, with exact resume and a clean stop on budget exhaustion or Ctrl-C."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from langprop.atomic import atomic_write_json
from langprop.llm.base import BudgetExceeded, LLMError
from langprop.policy import NoCodeError, Policy, extract_code
from langprop.population import Population
from langprop.prompts.context import HistoryEntry, setup_context
from langprop.prompts.template import PromptTemplate
from langprop.trainer.callbacks import Callback, RichProgress
from langprop.trainer.config import ConfigError, SandboxConfig, TrainerConfig, sandbox_limits
from langprop.trainer.metrics import MetricsLogger, append_jsonl, plot_curves, truncate_jsonl
from langprop.trainer.model import LangPropModel
from langprop.trainer.prompting import update_messages

log = logging.getLogger(__name__)

TRACKER = "train"
VAL_TRACKER = "val"  # only with TrainerConfig.val_tracker


@dataclass
class StepStats:
    """Counts gathered while a step runs; turned into one metrics row."""

    n_prompts: int = 0
    n_answers: int = 0
    n_children: int = 0
    n_no_code: int = 0
    children_scores: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _round(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


class Trainer:
    """Optimises ``model``'s policy with ``llm`` as the optimizer (see ``fit``).

    ``evaluator`` may be passed in (tests, custom pools); otherwise ``fit`` builds a sandbox pool
    from ``sandbox`` and an ``Evaluator`` with its cache in the run dir, and closes them after.
    ``run_config`` is stored in every checkpoint (the CLI passes the whole run configuration).
    """

    def __init__(
        self,
        model: LangPropModel,
        llm: Any,
        config: TrainerConfig,
        callbacks: Sequence[Callback] = (),
        evaluator: Any | None = None,
        sandbox: SandboxConfig | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        config.validate()
        self.model = model
        self.llm = llm
        self.config = config
        self.callbacks: list[Callback] = list(callbacks)
        if config.progress:
            self.callbacks.append(RichProgress())
        self.sandbox = sandbox or SandboxConfig()
        self.run_config = run_config or {"trainer": dataclasses.asdict(config)}
        self.run_dir = Path(config.run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.tracker_names = (TRACKER, VAL_TRACKER) if config.val_tracker else (TRACKER,)
        self.population = Population(self.tracker_names, decay=config.decay, max_keep=config.max_keep,
                                     seed=config.seed)
        self.step = 0
        self.val_scores: dict[str, float] = {}
        self.stop_reason = "not started"
        self._evaluator = evaluator
        self._own_pool: Any = None
        self._setup_tpl = PromptTemplate(model.setup_template, model.template_dirs)
        self._update_tpl = PromptTemplate(model.update_template, model.template_dirs)
        self._snapshot: dict[str, Any] | None = None
        self._saved_step: int | None = None
        self.metrics: MetricsLogger | None = None
        self.eval_stats: dict[str, float] = {}  # the evaluator's counters (cache hits...) after fit

    # -- public ---------------------------------------------------------------------------------
    def fit(self, train: Sequence[Any], val: Sequence[Any] | None = None, resume: bool = True) -> Population:
        """Train on ``train`` (a list of ``Sample``), validating on ``val``; returns the population.

        With ``resume`` and a checkpoint in ``run_dir``, continues after its step exactly as an
        uninterrupted run would (same batches, same prompts, same recorded answers).

        With ``resume=False`` (``--no-resume``) the run starts afresh: an existing ``checkpoints/``
        is MOVED ASIDE to ``checkpoints.old-<UTC time>`` (never deleted: it may be a person's only
        copy of a previous run), the evaluation cache ``eval_cache.sqlite`` is deleted (it is only a
        cache) when this trainer builds its own evaluator, and ``metrics``/``failures`` start empty.
        """
        if not train:
            raise ValueError("fit() needs at least one training sample")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        batches_per_epoch = math.ceil(len(train) / self.config.batch_size)
        total = self.config.epochs * batches_per_epoch
        last = total if self.config.max_steps is None else min(total, self.config.max_steps)
        if not resume:
            self._start_afresh()
        restored = resume and self._restore()
        # TensorBoard discards its older events at or after the first step this run writes, so a
        # resumed (or restarted) run's curves do not show the same step twice.
        purge_step = self.step + 1 if restored else 0
        self.metrics = MetricsLogger(self.run_dir, tensorboard=self.config.tensorboard, purge_step=purge_step)
        if restored:
            self.metrics.truncate(self.step)
            truncate_jsonl(self.run_dir / "failures.jsonl", self.step)
        else:
            self.metrics.truncate(-1)
            truncate_jsonl(self.run_dir / "failures.jsonl", -1)
        if self._evaluator is None:
            self._evaluator = self._build_evaluator()
        evaluator = self._evaluator
        for cb in self.callbacks:
            cb.on_fit_start(self, self.step, total)
        self.stop_reason = "completed"
        try:
            if not restored:
                self._take_snapshot(before_setup=True)  # what a stop during setup checkpoints
                self._setup_step(evaluator, val)
            for step in range(self.step + 1, last + 1):
                epoch, index = divmod(step - 1, batches_per_epoch)
                batch = self._batch(train, epoch, index)
                row = self._train_step(evaluator, step, epoch, index, batch)
                # The schedule depends on `total`, not on `max_steps`, so a run stopped early and
                # resumed validates at exactly the same steps as an uninterrupted one.
                validate = bool(val) and (
                    (self.config.val_every and step % self.config.val_every == 0) or step == total
                )
                if validate:
                    self._validate(evaluator, val)
                    if self.config.val_tracker:  # validation scores changed the priorities: re-sort
                        self.population.rerank(step)
                        row.update(self._ranking_metrics())
                    row.update(self._val_metrics())
                self.step = step
                self._end_step(row.pop("_failures"))
                self.metrics.log(row)  # before the checkpoint: resume drops rows past the checkpoint
                self._checkpoint(force=step == last)
                for cb in self.callbacks:
                    cb.on_step_end(self, step, row)
            if last < total:
                self.stop_reason = f"max_steps={self.config.max_steps} reached"
        except BudgetExceeded as exc:
            self.stop_reason = f"LLM budget exhausted: {exc}"
            log.warning("stopping at the last completed step: %s", self.stop_reason)
            self._stop_cleanly(keep_spent_usage=True)
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            log.warning("interrupted: stopping at the last completed step")
            self._stop_cleanly()
        except LLMError as exc:  # unreachable endpoint, replay miss: keep the last step, then report
            self.stop_reason = f"LLM error: {exc}"
            self._stop_cleanly()
            raise
        except Exception as exc:  # e.g. the sandbox cannot start: same, so run_state.json tells the truth
            self.stop_reason = f"error: {type(exc).__name__}: {exc}"
            self._stop_cleanly()
            raise
        finally:
            self._finish()
        log.info("training stopped at step %d: %s", self.step, self.stop_reason)
        return self.population

    def _start_afresh(self) -> None:
        """``resume=False``: move old checkpoints aside and drop the evaluation cache (see ``fit``)."""
        if self.checkpoint_dir.exists():
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            target = self.run_dir / f"checkpoints.old-{stamp}"
            n = 1
            while target.exists():
                n += 1
                target = self.run_dir / f"checkpoints.old-{stamp}-{n}"
            self.checkpoint_dir.rename(target)
            log.warning("--no-resume: moved the previous checkpoints to %s", target)
        if self._evaluator is None:  # a caller's own evaluator keeps its own cache
            for suffix in ("", "-wal", "-shm", "-journal"):
                (self.run_dir / f"eval_cache.sqlite{suffix}").unlink(missing_ok=True)

    def best_policy(self) -> Policy | None:
        policies = self.population.policies
        return policies[0] if policies else None

    # -- steps ----------------------------------------------------------------------------------
    def _setup(self, stats: StepStats) -> None:
        n = self.config.n_setup_responses or self.config.n_top_choices * self.config.n_responses
        messages = self._setup_tpl.render(**setup_context(self.model.spec, **self._task_context()))
        answers = self.llm.complete([messages], n=n, tags=[f"setup_s{self.step:04d}"])[0]
        stats.n_prompts += 1
        stats.n_answers += len(answers)
        self._add_children(answers, parent=None, stats=stats)

    def _setup_step(self, evaluator: Any, val: Sequence[Any] | None) -> None:
        """Step 0: the initial population, and (with ``val``) its zero-shot validation score."""
        stats = StepStats()
        self._setup(stats)
        row: dict[str, Any] = {
            "step": 0,
            "epoch": 0,
            "n_policies": len(self.population),
            "n_prompts": stats.n_prompts,
            "n_answers": stats.n_answers,
            "n_children": stats.n_children,
            "n_no_code": stats.n_no_code,
            **self._usage_metrics(),
        }
        if val and len(self.population):
            self._validate(evaluator, val)
            # No ranking exists before the first batch, so only the best of the population is meaningful.
            row["val_max_score"] = _round(max(self.val_scores.values()))
        self._end_step(stats.failures)
        assert self.metrics is not None
        self.metrics.log(row)
        self._checkpoint(force=True)
        for cb in self.callbacks:
            cb.on_step_end(self, 0, row)

    def _usage_metrics(self) -> dict[str, Any]:
        usage = dict(getattr(self.llm, "usage", {}) or {})
        return {
            "llm_calls": usage.get("calls"),
            "llm_prompt_tokens": usage.get("prompt_tokens"),
            "llm_completion_tokens": usage.get("completion_tokens"),
            "llm_cost": _round(usage.get("cost")),
        }

    def _train_step(self, evaluator: Any, step: int, epoch: int, index: int, batch: list[Any]) -> dict[str, Any]:
        stats = StepStats()
        self.step = step  # ids and tags of this step's children
        if len(self.population) == 0:
            log.warning("step %d: the population is empty; asking for new policies", step)
            self._setup(stats)
        parents_evals = self._evaluate(evaluator, self.population.policies, batch, stats)
        batch_scores = [e.score for evs in parents_evals.values() for e in evs]
        self.population.rerank(step)
        prompts, parents, tags = [], [], []
        for rank, policy in enumerate(self.population.top(self.config.n_top_choices)):
            evals = parents_evals[policy.id]
            if self.model.perfect_score is not None and all(e.score >= self.model.perfect_score for e in evals):
                continue  # nothing to fix on this batch
            prompts.append(
                update_messages(
                    self.model,
                    self._update_tpl,
                    policy,
                    evals,
                    batch,
                    priority=self.population.priority(policy.id),
                    n_failures=self.config.n_failure_examples,
                    rng=random.Random(f"{self.config.seed}:{step}:{rank}"),
                    history=self._history(policy),
                )
            )
            parents.append(policy)
            tags.append(f"update_s{step:04d}_{policy.id}")
        if prompts:
            answer_lists = self.llm.complete(prompts, n=self.config.n_responses, tags=tags)
            stats.n_prompts += len(prompts)
            children: list[Policy] = []
            for parent, answers in zip(parents, answer_lists, strict=True):
                stats.n_answers += len(answers)
                children += self._add_children(answers, parent=parent, stats=stats)
            child_evals = self._evaluate(evaluator, children, batch, stats)
            stats.children_scores = [e.score for evs in child_evals.values() for e in evs]
        self.population.rerank(step)
        return {
            "step": step,
            "epoch": epoch,
            "batch": index,
            "n_samples": len(batch),
            **self._ranking_metrics(),
            "batch_best_score": _round(max(batch_scores + stats.children_scores, default=math.nan)),
            "batch_mean_score": _round(_mean(batch_scores)),
            "n_prompts": stats.n_prompts,
            "n_answers": stats.n_answers,
            "n_children": stats.n_children,
            "n_no_code": stats.n_no_code,
            "children_best_score": _round(max(stats.children_scores, default=math.nan)),
            "n_calls": sum(stats.statuses.values()),
            "n_exceptions": stats.statuses.get("exception", 0),
            "n_timeouts": stats.statuses.get("timeout", 0),
            "n_crashes": stats.statuses.get("crash", 0),
            **self._usage_metrics(),
            "_failures": stats.failures,
        }

    def _ranking_metrics(self) -> dict[str, Any]:
        priorities = self.population.priorities()
        best_id = next(iter(priorities), None)
        return {
            "n_policies": len(priorities),
            "best_id": best_id,
            "best_priority": _round(priorities.get(best_id)) if best_id else None,
            "mean_priority": _round(_mean(list(priorities.values()))),
        }

    def _add_children(self, answers: Sequence[Any], parent: Policy | None, stats: StepStats) -> list[Policy]:
        children = []
        generation = 0 if parent is None else parent.generation + 1
        for answer in answers:
            try:
                source = extract_code(answer.text, self.model.spec)
            except NoCodeError as exc:
                stats.n_no_code += 1
                stats.failures.append(
                    {
                        "step": self.step,
                        "kind": "no_code",
                        "parent_id": parent.id if parent else None,
                        "reason": exc.reason,
                        "finish_reason": answer.finish_reason,
                        "response_file": self._rel(answer.response_file),
                        "answer_head": answer.text[:200],
                    }
                )
                continue
            child = Policy(
                id=self.population.new_id(generation),
                source=source,
                generation=generation,
                parent_id=parent.id if parent else None,
                model=answer.model,
                prompt_file=self._rel(answer.prompt_file),
                response_file=self._rel(answer.response_file),
                created_step=self.step,
            )
            self.population.add(child)
            children.append(child)
        stats.n_children += len(children)
        return children

    def _evaluate(self, evaluator: Any, policies: list[Policy], batch: list[Any], stats: StepStats) -> dict:
        if not policies:
            return {}
        results = evaluator.evaluate(policies, batch)
        for policy in policies:
            evals = results[policy.id]
            self.population.record_many(TRACKER, policy.id, [e.score for e in evals])
            errors: dict[tuple[str, str | None], list[Any]] = {}
            for e in evals:
                stats.statuses[e.call.status] = stats.statuses.get(e.call.status, 0) + 1
                if e.call.status != "ok":
                    errors.setdefault((e.call.status, e.call.error_type), []).append(e)
                elif self._wrong_output(e):
                    errors.setdefault(("wrong_output", None), []).append(e)
            for (status, error_type), group in errors.items():
                call = group[0].call
                reason = group[0].feedback if status == "wrong_output" else call.error_message or group[0].feedback
                stats.failures.append(
                    {
                        "step": self.step,
                        "kind": status,
                        "policy_id": policy.id,
                        "error_type": error_type,
                        "count": len(group),
                        "reason": (reason or status)[:300],
                    }
                )
        return results

    def _wrong_output(self, evaluation: Any) -> bool:
        """A call that returned, but whose output is wrong: below the model's perfect score when it
        has one, else scored no better than an exception (e.g. the scorer could not read it)."""
        if self.model.perfect_score is not None:
            return evaluation.score < self.model.perfect_score
        floor = getattr(self.model.scorer, "exception_score", self.config.exception_score)
        return evaluation.score <= floor

    def _validate(self, evaluator: Any, val: Sequence[Any]) -> None:
        results = evaluator.evaluate(self.population.policies, list(val))
        self.val_scores = {pid: float(np.mean([e.score for e in evs])) for pid, evs in results.items()}
        if self.config.val_tracker:
            for pid, evs in results.items():
                self.population.record_many(VAL_TRACKER, pid, [e.score for e in evs])

    def _val_metrics(self) -> dict[str, Any]:
        best = self.best_policy()
        return {
            "val_best_id_score": _round(self.val_scores.get(best.id)) if best else None,
            "val_max_score": _round(max(self.val_scores.values(), default=math.nan)),
        }

    def _history(self, policy: Policy, limit: int = 3) -> list[HistoryEntry]:
        ancestors = self.population.ancestors(policy.id)[:limit]
        return [
            HistoryEntry(
                policy_id=rec["id"],
                generation=int(rec.get("generation", 0)),
                priority=rec.get("last_priority"),
            )
            for rec in reversed(ancestors)
        ]

    def _task_context(self) -> dict[str, Any]:
        return dict(self.model.context)

    def _batch(self, train: Sequence[Any], epoch: int, index: int) -> list[Any]:
        order = np.random.default_rng([self.config.seed, epoch]).permutation(len(train))
        size = self.config.batch_size
        return [train[i] for i in order[index * size : (index + 1) * size]]

    # -- state ----------------------------------------------------------------------------------
    def _end_step(self, failures: list[dict[str, Any]]) -> None:
        """Close the batch: decay trackers, log failures, remember a snapshot to fall back to."""
        self.population.reset_trackers()
        append_jsonl(self.run_dir / "failures.jsonl", failures)
        self._take_snapshot()

    def _take_snapshot(self, before_setup: bool = False) -> None:
        self._snapshot = {
            "before_setup": before_setup,
            "step": self.step,
            "population": copy.deepcopy(self.population.state_dict()),
            "val_scores": dict(self.val_scores),
            "llm": copy.deepcopy(self._llm_state()),
        }

    def _llm_state(self) -> dict[str, Any]:
        state_dict = getattr(self.llm, "state_dict", None)
        return state_dict() if callable(state_dict) else {}

    def _checkpoint(self, force: bool = False) -> None:
        if not force and self.step % self.config.checkpoint_every != 0:
            return
        from langprop.checkpoint import save_checkpoint

        snap = self._snapshot
        assert snap is not None
        extra = {"val_scores": snap["val_scores"], "llm_state": snap["llm"]}
        if snap.get("before_setup"):
            extra["before_setup"] = True
        path = save_checkpoint(
            self.checkpoint_dir, snap["step"], self.population, self.run_config, extra,
            spec=self.model.spec, keep_last=self.config.keep_checkpoints,
        )
        self._saved_step = snap["step"]
        for cb in self.callbacks:
            cb.on_checkpoint(self, snap["step"], path)

    def _restore(self) -> bool:
        from langprop.checkpoint import load_checkpoint

        if not (self.checkpoint_dir / "latest").exists():
            return False
        data = load_checkpoint(self.checkpoint_dir)
        stored_trackers = tuple(data.population_state.get("tracker_names", (TRACKER,)))
        if stored_trackers != self.tracker_names and not data.extra.get("before_setup"):  # (no population yet)
            raise ConfigError(
                f"trainer.val_tracker={self.config.val_tracker}: the checkpoint in {self.checkpoint_dir} has the "
                f"trackers {list(stored_trackers)}; resume with the setting it was trained with, or use --no-resume"
            )
        load_state = getattr(self.llm, "load_state_dict", None)
        if callable(load_state) and data.extra.get("llm_state"):
            load_state(data.extra["llm_state"])
        if data.extra.get("before_setup"):  # stopped before step 0 finished: redo it (usage kept)
            log.info("%s holds no completed step; starting from setup", self.checkpoint_dir)
            return False
        stored = (data.config or {}).get("trainer", {})
        for key in ("seed", "batch_size", "decay", "max_keep"):  # these change what "resume" means
            if key in stored and stored[key] != getattr(self.config, key):
                log.warning("resuming %s with trainer.%s=%r (the checkpoint used %r): results will differ "
                            "from an uninterrupted run", self.checkpoint_dir, key, getattr(self.config, key),
                            stored[key])
        self.population.load_state_dict(data.population_state)
        self.step = int(data.step)
        self.val_scores = dict(data.extra.get("val_scores", {}))
        self._take_snapshot()  # the checkpoint was written after the trackers were reset
        self._saved_step = self.step
        log.info("resumed from %s at step %d", self.checkpoint_dir, self.step)
        return True

    def _stop_cleanly(self, keep_spent_usage: bool = False) -> None:
        """Roll back to the last completed step and make sure a checkpoint of it exists.

        With ``keep_spent_usage`` (budget exhausted) the checkpoint records the tokens really spent,
        including those of the unfinished step, so a resumed run cannot overspend the budget.
        """
        if self._snapshot is None:
            return
        self.population.load_state_dict(self._snapshot["population"])
        self.step = self._snapshot["step"]
        self.val_scores = self._snapshot["val_scores"]
        spent = self._llm_state().get("usage")
        if keep_spent_usage and spent is not None and spent != self._snapshot["llm"].get("usage"):
            self._snapshot["llm"]["usage"] = spent
            self._saved_step = None
        if self._saved_step != self.step:
            self._checkpoint(force=True)

    def _finish(self) -> None:
        for cb in self.callbacks:
            try:
                cb.on_fit_end(self, self.stop_reason)
            except Exception:  # a broken callback must not hide the training result
                log.exception("callback %r failed in on_fit_end", cb)
        stats = getattr(self._evaluator, "stats", None)
        if isinstance(stats, dict):
            self.eval_stats = dict(stats)
        if self._own_pool is not None:
            if self._evaluator is not None:
                self._evaluator.close()
            self._own_pool.close()
            self._own_pool = None
            self._evaluator = None
        if self.metrics is not None:
            plot_curves(self.metrics.rows, self.run_dir / "curves.png")
            self.metrics.close()
        best = self.best_policy()
        atomic_write_json(
            self.run_dir / "run_state.json",
            {
                "step": self.step,
                "stop_reason": self.stop_reason,
                "best_id": best.id if best else None,
                "best_val_score": self.val_scores.get(best.id) if best else None,
            },
        )

    def _build_evaluator(self) -> Any:
        from langprop.evaluation import Evaluator
        from langprop.sandbox import SandboxPool

        limits = sandbox_limits(self.sandbox)
        self._own_pool = SandboxPool(n_workers=self.sandbox.n_workers, limits=limits, harness=self.model.harness)
        return Evaluator(self.model.scorer, self._own_pool, cache_path=self.run_dir / "eval_cache.sqlite",
                         function_name=self.model.spec.name)

    def _rel(self, path: str | None) -> str | None:
        """Paths in lineage are relative to the run dir, so two run dirs give identical checkpoints."""
        if path is None:
            return None
        try:
            return os.path.relpath(path, self.run_dir)
        except ValueError:
            return path
