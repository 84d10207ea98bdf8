"""What the training loop does between steps: progress line, TensorBoard, NaN guard, checkpoints, image grids.

TensorBoard tags (every ``log_every`` steps, window means): ``loss/d_loss``, ``loss/g_loss``, every term ``D/<name>``
and ``G/<name>``; per discriminator ``critic/<critic>/{logit,p}_{real,fake}`` and ``critic/<critic>/accuracy``
(its mean logit and probability of the true class on real and on generated or shuffled tuples, and its accuracy
over both); ``player/{grad_norm,weight_norm,lr}_{D,G}``; ``perf/steps_per_sec``, ``perf/tuples_per_sec``. Once at
the start: ``config`` (text) and the hparams of the resolved config. Images: ``samples/<modality>``.
"""

from __future__ import annotations

import json
import math
import time

import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams

from mmali_tf.errors import TrainingDiverged

TUPLES_PER_STEP = 4  # fresh paired batches per iteration


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def write_config_summary(writer, config) -> None:
    """The resolved config as a text summary and as TensorBoard hparams (flattened dotted names)."""
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, (list, tuple)):
            flat[prefix] = json.dumps(value)
        else:
            flat[prefix] = value if isinstance(value, (bool, int, float, str)) else str(value)

    walk("", config.to_dict())
    with writer.as_default(step=0), tf.summary.record_if(True):
        tf.summary.text("config", "```\n" + config.to_json() + "\n```", step=0)
        hparams.hparams({k: v for k, v in flat.items() if v is not None})
    writer.flush()


class Monitor:
    """Called after every training step with the step's scalars (means over the global batch).

    Every ``log_every`` steps (and at checkpoints and the end): check that the window's means are finite, write
    them to TensorBoard, print ``step, rate, ETA``. Every ``save_every`` and at each of ``keep_steps``:
    ``save_fn(step)``; ``image_every``:
    ``image_fn(step)``; ``extra_every``: ``extra_fn(step)`` (evaluation). ``writer``, ``image_fn``, ``extra_fn`` and
    ``print_fn`` may be None (workers other than the chief); the schedule is the same on every worker.
    """

    def __init__(self, *, save_fn, writer, max_iter, log_every, save_every, image_every, batch_size, start_step,
                 image_fn=None, print_fn=print, extra_fn=None, extra_every=0, keep_steps=()):
        self.save_fn = save_fn
        self.writer = writer
        self.max_iter = max_iter
        self.log_every = log_every
        self.save_every = save_every
        self.image_every = image_every
        self.batch_size = batch_size
        self.image_fn = image_fn
        self.print_fn = print_fn
        self.extra_fn = extra_fn
        self.extra_every = extra_every
        self.keep_steps = tuple(keep_steps)
        self.start_step = self.window_step = self.previous_step = start_step
        self.start_time = self.window_time = time.perf_counter()
        self.sums: dict[str, float] = {}
        self.count = 0
        self.last_saved = None
        self.last_checkpoint = None
        self.last_images = None
        self.last_extra = None  # step of the last extra_fn call, so the caller does not evaluate it twice

    def _due(self, step: int, every: int) -> bool:
        # Steps may advance by more than one (steps_per_execution): fire when a multiple was crossed.
        return every > 0 and step // every > self.previous_step // every

    def after_step(self, step: int, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1
        save = self._due(step, self.save_every) or any(self.previous_step < k <= step for k in self.keep_steps)
        if self._due(step, self.log_every) or save or step == self.max_iter:
            self.log(step)
        if save:
            self.save(step)
        if self.image_fn is not None and self._due(step, self.image_every):
            self.image_fn(step)
            self.last_images = step
        if self.extra_fn is not None and self._due(step, self.extra_every):
            self.extra_fn(step)
            self.last_extra = step
        self.previous_step = step

    def finish(self, step: int) -> None:
        """At the end of training: the last log, checkpoint and images, unless this step already had them."""
        if self.last_saved != step:
            self.log(step)
            self.save(step)
        if self.image_fn is not None and self.last_images != step:
            self.image_fn(step)
            self.last_images = step

    def log(self, step: int) -> None:
        if not self.count:
            return
        values = {k: v / self.count for k, v in self.sums.items()}
        bad = sorted(k for k, v in values.items() if not math.isfinite(v))
        if bad:
            raise TrainingDiverged(f"non-finite loss at step {step}: {', '.join(bad[:6])} "
                                   f"(last good checkpoint: {self.last_checkpoint})")
        now = time.perf_counter()
        rate = (step - self.window_step) / max(now - self.window_time, 1e-9)
        overall = (step - self.start_step) / max(now - self.start_time, 1e-9)
        if self.writer is not None:
            with self.writer.as_default(step=step), tf.summary.record_if(True):
                for key, value in values.items():
                    tf.summary.scalar(key if "/" in key else f"loss/{key}", value)
                tf.summary.scalar("perf/steps_per_sec", rate)
                tf.summary.scalar("perf/tuples_per_sec", rate * TUPLES_PER_STEP * self.batch_size)
        if self.print_fn is not None:
            eta = (self.max_iter - step) / overall if overall > 0 else float("inf")
            self.print_fn(f"step {step}/{self.max_iter}  {rate:.2f} it/s  ETA {format_duration(eta)}  "
                          f"d_loss {values.get('d_loss', float('nan')):.4f}  "
                          f"g_loss {values.get('g_loss', float('nan')):.4f}")
        self.sums, self.count = {}, 0
        self.window_step, self.window_time = step, now

    def save(self, step: int) -> None:
        path = self.save_fn(step)
        self.last_saved = step
        self.last_checkpoint = path
        if self.print_fn is not None and path:
            self.print_fn(f"saved checkpoint {path}")
