"""Progress on stderr: a rich bar on a terminal, plain lines now and then in a log, nothing with
--quiet; and the bridges from train's callback and evaluate's stages to it.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from typing import Optional

from mnistgen.cli.plumbing import stderr

WIDE_PROGRESS = 100  # columns the full progress line needs (a long stage, a 7-digit count, train's info)
SHORT_BAR, SHORT_BAR_FROM = 10, 60  # a narrower terminal's bar, and the width it needs one


def progress_bar(quiet: bool, log: Optional[bool] = None):
    """A rich progress bar on stderr, or a stand-in with the same interface: silent (`quiet`), or plain
    lines (`log`; by default when stderr is no terminal, as in a batch job's log file, where rich
    would draw only the end). On a terminal narrower than WIDE_PROGRESS (where rich would squeeze
    columns to nothing, the count first) the line is the stage, a short bar (from SHORT_BAR_FROM
    columns), the count and the time left, then what fits of the info (rate, rejected share)."""
    if quiet:
        return _NullProgress()
    from rich.console import Console

    console = Console(stderr=True)
    if log or (log is None and not console.is_terminal):
        return _LogProgress()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column

    if console.width < WIDE_PROGRESS:
        kept = Column(no_wrap=True)
        bar = [BarColumn(bar_width=SHORT_BAR)] if console.width >= SHORT_BAR_FROM else []
        return Progress(
            TextColumn("{task.description}", table_column=kept),
            *bar,
            MofNCompleteColumn(table_column=kept),
            TimeRemainingColumn(table_column=kept),
            TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
            console=console,
            transient=False,
            expand=True,  # the info column takes what is left, and only that
        )
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


class _NullProgress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *args, **kwargs):
        return 0

    def update(self, *args, **kwargs):
        pass

    def print(self, *args, **kwargs):
        pass

    @property
    def console(self):
        return self


LOG_EVERY = 30.0  # seconds between a task's progress lines in a log


class _LogProgress(_NullProgress):
    """Progress for a log (stderr a file or a pipe): a plain line per task when it starts, every
    LOG_EVERY seconds, and when it completes (`generating 12,288/100,000 (12%)  2731 img/s, 0:00:45`),
    so a long batch job shows how far it is; `print` writes its line to stderr."""

    def __init__(self):
        self.tasks: list[dict] = []

    def __exit__(self, *exc):
        for task in self.tasks:
            if not task["ended"]:
                self._line(task)
        return False

    def add_task(self, description, total=None, info="", **fields):
        self.tasks.append({"description": description, "total": total, "completed": 0, "info": info,
                           "start": time.monotonic(), "shown": None, "ended": False})  # fmt: skip
        return len(self.tasks) - 1

    def update(self, task_id, completed=None, advance=None, total=None, description=None, info=None, **fields):
        task = self.tasks[task_id]
        if completed is not None and completed < task["completed"]:
            task["ended"] = False  # counting again (train's next epoch): its end is told again
        changes = {"completed": completed, "total": total, "description": description, "info": info}
        task.update({key: value for key, value in changes.items() if value is not None})
        task["completed"] += advance or 0
        done = task["total"] is not None and task["completed"] >= task["total"]
        now = time.monotonic()
        if (done and not task["ended"]) or task["shown"] is None or now - task["shown"] >= LOG_EVERY:
            self._line(task, now)
            task["ended"] = done

    def _line(self, task: dict, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        task["shown"] = now
        total, done = task["total"], task["completed"]
        count = f"{done:,}/{total:,} ({done / total:.0%})" if total else f"{done:,}"
        elapsed = datetime.timedelta(seconds=int(now - task["start"]))  # 0:00:45, as rich shows it
        info = f"  {task['info'].strip()}" if task["info"] and task["info"].strip() else ""
        stderr(f"{task['description']} {count}{info}, {elapsed}")

    def print(self, *objects, **kwargs):
        stderr(" ".join(str(obj) for obj in objects))


class TrainProgress(contextlib.ExitStack):
    """Bridges the library's TrainCallback to a rich bar (a null one with --quiet). The bar starts
    with the first epoch: one stopped before it draws an empty line, so a refusal while the data
    loads would not be one error line."""

    def __init__(self, quiet: bool, where: Optional[str] = None, tested: bool = False):
        super().__init__()
        self.quiet, self.bar, self.task, self.epochs = quiet, None, None, 0
        self.where = where  # "cpu, into runs/x": announced with the plan (None: quiet)
        self.tested = tested  # --test given: nothing is held out for testing

    @property
    def progress(self):
        if self.bar is None:
            self.bar = self.enter_context(progress_bar(self.quiet))
        return self.bar

    def on_plan(self, config, options, images: int):
        if self.where:
            counted = f"{images:,} image{'' if images == 1 else 's'}"
            stderr(f"training {config.kind} (recipe {options.recipe}, latent {config.latent}) on {counted} "
                    f"({self._held_out(options)}), {self.where}")  # fmt: skip

    def _held_out(self, options) -> str:
        """What train.hold_out keeps from the images on_plan counts (the card's training.holdout has the counts)."""
        from mnistgen.data import TEST_FRACTION, VAL_FRACTION

        if "indices" in options.extra:
            return "--indices names every training image: none held out"
        tests = (
            "tested on --test" if self.tested else f"{TEST_FRACTION:.0%} for testing unless the data has a test split"
        )
        return f"{VAL_FRACTION:.0%} of each label held out for validation, {tests}; at least 1 each"

    def on_start(self, epochs, first_epoch, steps_per_epoch):
        self.epochs = epochs
        self.task = self.progress.add_task(f"epoch {first_epoch + 1}/{epochs}", total=steps_per_epoch, info="")

    def on_step(self, epoch, step, loss, rec, kl, images_per_s):
        info = f"loss {loss:8.2f}  KL {kl:6.2f}  {images_per_s:6.0f} img/s"
        self.progress.update(self.task, completed=step + 1, description=f"epoch {epoch + 1}/{self.epochs}", info=info)

    def on_epoch(self, metrics):
        test = (
            f"test loss {metrics['test_loss']:.2f} (rec {metrics['test_rec']:.2f}, KL {metrics['test_kl']:.2f})"
            if "test_loss" in metrics
            else "no test evaluation this epoch"
        )
        self.progress.console.print(
            f"epoch {metrics['epoch']}: train loss {metrics['train_loss']:.2f}, {test}, {metrics['seconds']:.0f} s"
        )

    def on_stage(self, text):
        if self.where:  # not with --quiet
            self.progress.console.print(text)


class StageProgress(contextlib.ExitStack):
    """Bridges evaluate's on_progress(stage, done, total) to a rich bar (a null one with --quiet): a
    line per stage, kept when the next starts. The bar starts with the first stage, so a refusal
    before any work is one error line."""

    def __init__(self, quiet: bool):
        super().__init__()
        self.quiet, self.progress, self.stage, self.task = quiet, None, None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.progress is None:
            self.progress = self.enter_context(progress_bar(self.quiet))
        if stage != self.stage:
            self.stage, self.task = stage, self.progress.add_task(stage, total=total, info="")
        self.progress.update(self.task, completed=done, total=total)
