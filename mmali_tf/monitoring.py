"""Training callbacks: progress line, TensorBoard scalars, NaN guard, checkpoints, image grids."""

from __future__ import annotations

import math
import time

import keras
import tensorflow as tf

from mmali_tf import images
from mmali_tf.errors import TrainingDiverged


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def global_step(model) -> int:
    return int(model.d_optimizer.iterations.numpy())


class TrainingMonitor(keras.callbacks.Callback):
    """Every ``log_every`` steps: check the window's mean losses are finite, write them to TensorBoard, print
    ``step, rate, ETA``, reset the trackers. Every ``save_every`` steps: check, then checkpoint. Every
    ``image_every`` steps: grids. ``extra_every`` runs ``extra_fn(step)`` (evaluation)."""

    def __init__(self, *, manager, writer, max_iter, log_every, save_every, image_every, image_batch, png_dir,
                 print_fn=print, extra_fn=None, extra_every=0):
        super().__init__()
        self.manager = manager
        self.writer = writer
        self.max_iter = max_iter
        self.log_every = log_every
        self.save_every = save_every
        self.image_every = image_every
        self.image_batch = image_batch
        self.png_dir = png_dir
        self.print_fn = print_fn
        self.extra_fn = extra_fn
        self.extra_every = extra_every
        self.last_saved = None
        self.last_images = None
        self.last_extra = None  # step of the last extra_fn call, so the caller does not evaluate it twice

    def on_train_begin(self, logs=None):
        self.start_step = global_step(self.model)
        self.window_step = self.start_step
        self.start_time = self.window_time = time.perf_counter()

    def _due(self, step: int, every: int) -> bool:
        # With steps_per_execution > 1 the callback sees every k-th step; fire when a multiple was crossed.
        return every > 0 and step // every > self.previous_step // every

    def on_train_batch_begin(self, batch, logs=None):
        self.previous_step = global_step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        if self._due(step, self.log_every) or self._due(step, self.save_every) or step == self.max_iter:
            self.log(step)
        if self._due(step, self.save_every):
            self.save(step)
        if self._due(step, self.image_every):
            self.write_images(step)
        if self.extra_fn is not None and self._due(step, self.extra_every):
            self.extra_fn(step)
            self.last_extra = step

    def on_train_end(self, logs=None):
        step = global_step(self.model)
        if self.last_saved != step:
            self.log(step)
            self.save(step)
        if self.last_images != step:
            self.write_images(step)

    def log(self, step: int):
        values = {m.name: float(m.result()) for m in self.model.metrics if int(m.count.numpy()) > 0}
        if not values:
            return
        bad = sorted(k for k, v in values.items() if not math.isfinite(v))
        if bad:
            raise TrainingDiverged(f"non-finite loss at step {step}: {', '.join(bad)} "
                                   f"(last good checkpoint: {self.manager.latest_checkpoint})")
        now = time.perf_counter()
        rate = (step - self.window_step) / max(now - self.window_time, 1e-9)
        overall = (step - self.start_step) / max(now - self.start_time, 1e-9)
        with self.writer.as_default(step=step), tf.summary.record_if(True):
            for key, value in values.items():
                tf.summary.scalar(key if "/" in key else f"loss/{key}", value)
            tf.summary.scalar("perf/steps_per_sec", rate)
        eta = (self.max_iter - step) / overall if overall > 0 else float("inf")
        self.print_fn(f"step {step}/{self.max_iter}  {rate:.2f} it/s  ETA {format_duration(eta)}  "
                      f"d_loss {values.get('d_loss', float('nan')):.4f}  g_loss {values.get('g_loss', float('nan')):.4f}")
        for metric in self.model.metrics:
            metric.reset_state()
        self.window_step, self.window_time = step, now

    def save(self, step: int):
        path = self.manager.save(checkpoint_number=step)
        self.last_saved = step
        self.print_fn(f"saved checkpoint {path}")

    def write_images(self, step: int):
        if self.image_batch is None:
            return
        grids = images.translation_grids(self.model, self.image_batch)
        images.write_grids(grids, step, self.png_dir, self.writer)
        self.writer.flush()
        self.last_images = step

