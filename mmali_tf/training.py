"""Train an MMALI model from a typed config into a run directory (:mod:`mmali_tf.rundir`); resumes automatically.

The loop is our own (``strategy.run`` over a distributed dataset), the same for one process, MirroredStrategy and
MultiWorkerMirroredStrategy (Keras' ``fit`` cannot run this model under the latter; docs/platform.md, section 3).

Order of work, so that a failing command leaves a good run directory untouched: the config, the run directory and
the data are checked, the cluster is formed (all workers agree on the config) and the newest good checkpoint is
restored before the chief writes anything. Only the chief writes the run directory; the other workers save their
share of each checkpoint (TensorFlow needs every worker to take part) into a temporary directory they remove.

Stopping: SIGTERM or SIGINT finishes the current step, writes a checkpoint at that step and raises
:class:`Stopped` (a second signal ends the process at once). Under ``multi_worker`` a SIGTERM on any worker goes
through TensorFlow's ``PreemptionCheckpointHandler``: every worker saves at the same step and stops. A worker that
dies makes the others stop with one error line; rerunning the same command on every worker resumes from the last
checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from mmali_tf import checkpointing, checks, distribution, images, rundir, training_data
from mmali_tf.config import ExperimentConfig
from mmali_tf.data.pipeline import to_model_input
from mmali_tf.data.unpaired import pools_summary
from mmali_tf.errors import ConfigError, MMALIError, os_reason
from mmali_tf.model import MMALI, count_parameters
from mmali_tf.monitoring import Monitor, write_config_summary

IMAGE_EXAMPLES = 8
STOP_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}
_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
                tf.errors.CancelledError, tf.errors.InternalError)


class Stopped(MMALIError):
    """Training stopped on a signal after writing a checkpoint at the current step."""

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = STOP_CODES.get(signum, 1)
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} at step {step}; checkpoint {checkpoint}")


def build_model(config: ExperimentConfig, strategy=None) -> MMALI:
    """The model with seeded initial weights, compiled for training under ``strategy``."""
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.train.seed)
    with strategy.scope():
        model = MMALI(config)
        model.compile(jit_compile=bool(config.train.xla), steps_per_execution=config.train.steps_per_execution,
                      num_replicas=strategy.num_replicas_in_sync)
    return model


def make_step_function(model: MMALI, strategy, steps: int = 1):
    """A ``tf.function`` running ``steps`` training iterations from a (distributed) iterator; returns the last
    iteration's scalars averaged over the replicas. XLA over the whole function on a single replica when the config
    asks for it (under a strategy with several replicas the model compiles each replica's pass instead)."""
    jit = bool(model.config.train.xla) and strategy.num_replicas_in_sync == 1

    @tf.function(jit_compile=jit)
    def step_fn(iterator):
        for _ in range(steps):  # unrolled: steps_per_execution is small
            out = strategy.run(model.train_step, args=(next(iterator),))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in out.items()}

    return step_fn


def image_batch(splits, pairs, seed: int) -> dict[str, np.ndarray]:
    """A fixed set of paired examples for the sample grids, as the networks see them."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(next(iter(pairs.values()))), IMAGE_EXAMPLES, replace=False)
    return {n: to_model_input(np.asarray(splits[n].examples[pairs[n][picks]])) for n in splits}


def describe_examples(split, which: str) -> str:
    """E.g. "60,000 train images" or "88,550 train feature vectors (float32, 1024-d)"."""
    if split.examples.dtype == np.uint8:
        return f"{len(split):,} {which} images"
    dims = "x".join(str(d) for d in split.examples.shape[1:])
    return f"{len(split):,} {which} feature vectors ({split.examples.dtype}, {dims}-d)"


def network_parameters(model) -> str:
    """One entry per trained network, e.g. "enc_caption 705,536, dec_caption 698,240, ..., d_joint 3,985,921"."""
    return ", ".join(f"{net.name} {count_parameters([net]):,}" for net in model.generators + model.discriminators)


class _SignalStop:
    """SIGTERM / SIGINT during the loop: remember the first, end the process at once on a second."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            os._exit(STOP_CODES.get(signum, 1))
        self.signum = signum
        print(f"received {signal.Signals(signum).name}: finishing the step and saving a checkpoint "
              "(again to quit at once)", flush=True)

    def __enter__(self):
        for signum in STOP_CODES:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


class _CheckpointWriter:
    """Saves ``ckpt-<step>``: into the run directory on the chief, into a throwaway directory on other workers."""

    def __init__(self, model, workdir: str, role: distribution.Role, keep: int, keep_steps=()):
        self.role = role
        self.directory = (checkpointing.checkpoint_dir(workdir) if role.is_chief
                          else tempfile.mkdtemp(prefix=f"mmali_worker{role.task_index}_"))
        self.manager = checkpointing.make_manager(model, self.directory, keep)
        self.keep_steps = set(keep_steps)

    def save(self, step: int) -> str | None:
        """The chief's checkpoint path (None on the other workers, whose share is thrown away at the end)."""
        previous = self.manager.latest_checkpoint
        try:
            path = self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as exc:  # e.g. a full disk: leave no partial files behind
            checkpointing.remove_paths(checkpointing.stale_temporaries(self.directory)
                                       + checkpointing.files_of(self.directory, step))
            raise MMALIError(f"could not write the checkpoint at step {step}: {os_reason(exc)} "
                             f"(the previous checkpoint {previous} is intact)") from exc
        if self.role.is_chief and step in self.keep_steps:
            checkpointing.keep(path)
        return path if self.role.is_chief else None

    def close(self) -> None:
        if not self.role.is_chief:
            shutil.rmtree(self.directory, ignore_errors=True)


def run(config: ExperimentConfig, workdir: str, print_fn=print, evaluate_fn=None) -> dict:
    """Train (or resume) to ``config.train.max_iter`` steps. Returns a summary dict (and the model).

    ``evaluate_fn(model, step)``, if given, runs on the chief every ``eval_every`` steps and at the end when
    ``eval_at_end``. Raises :class:`Stopped` after a signal, :class:`mmali_tf.errors.MMALIError` on bad input.
    """
    config = checks.check_registered(config.validate())
    _, precision_reason = distribution.choose_precision(config.train.precision, config.name)
    config = distribution.resolve(config)
    t = config.train
    role = distribution.role_of(t)
    say = print_fn if role.is_chief else (lambda line: None)
    if role.is_chief:
        rundir.check_writable(workdir)
        rundir.check_resumable(config, workdir)
    splits = training_data.load_modalities(config, "train")
    pairs = training_data.make_pairs(config, splits, "train")
    pools_and_unpaired = training_data.unimodal_pools(config, splits, pairs)
    data_record = {"modalities": {n: {"source": s.source, "fingerprint": s.fingerprint, "images": len(s)}
                                  for n, s in splits.items()}, "pairing": training_data.pairing_summary(config, pairs)}
    pools = None
    if pools_and_unpaired is not None:
        pools, unpaired = pools_and_unpaired
        data_record["unpaired"] = pools_summary(pairs, pools, unpaired)

    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    distribution.configure_threads(t)
    distribution.configure_devices(t)
    strategy = distribution.make_strategy(t, role)
    if t.batch_size % strategy.num_replicas_in_sync:
        raise ConfigError(f"batch_size {t.batch_size} must be divisible by the {strategy.num_replicas_in_sync} "
                          "replicas")
    print_fn(f"role: {role.describe()}; {distribution.describe_devices()}")
    distribution.agree(strategy, distribution.fingerprint(rundir.learning_state(config)), "config")
    distribution.agree(strategy, distribution.fingerprint(data_record), "training data")
    for name, split in splits.items():
        say(f"{name}: {describe_examples(split, 'train')} from {split.source} (fingerprint {split.fingerprint})")
    say(f"train pairing: {data_record['pairing']}")
    if pools is not None:
        say(f"unpaired data on: {data_record['unpaired']}")

    model = build_model(config, strategy)
    say(f"parameters: generators {count_parameters(model.generators):,}, "
        f"discriminators {count_parameters(model.discriminators):,}; "
        f"{strategy.num_replicas_in_sync} replica(s), precision {t.precision} ({precision_reason}), XLA {'on' if t.xla else 'off'}, "
        f"{distribution.describe_threads()}")
    say(f"networks: {network_parameters(model)}")
    ckpt_dir = checkpointing.checkpoint_dir(workdir)
    restored = None
    if role.is_chief:
        restored = checkpointing.restore_newest(checkpointing.make_checkpoint(model), ckpt_dir)
    distribution.broadcast_from_chief(strategy, _all_state(model))
    start_step = int(model.d_optimizer.iterations.numpy())
    if restored:
        say(f"resumed from {restored.prefix} at step {start_step}")

    # From here on the chief writes the run directory.
    writer = None
    if role.is_chief:
        stale = checkpointing.stale_temporaries(ckpt_dir)
        if stale:
            checkpointing.remove_paths(stale)
            say(f"removed {len(stale)} temporary file(s) left by an interrupted checkpoint save: "
                f"{', '.join(os.path.basename(p) for p in stale)}")
        rundir.write_start_files(config, workdir, data_record)
        if checkpointing.rebuild_state_file(ckpt_dir, restored):
            say(f"rebuilt the checkpoint state file {os.path.join(ckpt_dir, checkpointing.STATE_FILE)} from the "
                f"files (latest {os.path.basename(restored.prefix)})")
        writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
        if not restored:
            write_config_summary(writer, config)
    checkpoints = _CheckpointWriter(model, workdir, role, t.keep_checkpoints, t.keep_steps)
    grids = image_batch(splits, pairs, config.data.seed) if role.is_chief else None

    written_grids: list[str] = []

    def write_images(step):
        written_grids[:] = images.write_grids(images.translation_grids(model, grids), step,
                                              os.path.join(workdir, "samples"), writer)
        writer.flush()

    evaluate = (lambda step: evaluate_fn(model, step)) if evaluate_fn is not None and role.is_chief else None
    monitor = Monitor(save_fn=checkpoints.save, writer=writer, max_iter=t.max_iter, log_every=t.log_every,
                      save_every=t.save_every, image_every=t.image_every, batch_size=t.batch_size,
                      start_step=start_step, image_fn=write_images if role.is_chief else None, print_fn=say,
                      extra_fn=evaluate if t.eval_every > 0 else None, extra_every=t.eval_every,
                      keep_steps=t.keep_steps)
    monitor.last_checkpoint = restored.prefix if restored else None
    started = time.perf_counter()
    try:
        if start_step < t.max_iter:
            dataset = _distributed_dataset(config, splits, pairs, start_step, pools, strategy)
            _train(model, strategy, dataset, monitor, start_step, role, checkpoints)
        else:
            say(f"nothing to do: the run is already at step {start_step} >= max_iter {t.max_iter}")
        step = int(model.d_optimizer.iterations.numpy())
        if step > start_step or not restored:
            monitor.finish(step)
    finally:
        checkpoints.close()
    elapsed = time.perf_counter() - started
    if evaluate is not None and t.eval_at_end and monitor.last_extra != step:
        evaluate(step)
    if writer is not None:
        writer.flush()
    summary = {"step": step, "checkpoint": checkpoints.manager.latest_checkpoint if role.is_chief else None,
               "seconds": elapsed, "role": role.describe(), "weights_digest": weights_digest(model),
               "steps_per_sec": (step - start_step) / elapsed if elapsed > 0 and step > start_step else None,
               "sample_grids": list(written_grids)}
    logging.info("training summary: %s", summary)
    return {**summary, "model": model}


def weights_digest(model: MMALI) -> str:
    """A short sha256 of every variable of the model and both optimizers (equal on workers that agree bit for bit)."""
    digest = hashlib.sha256()
    for variable in sorted(_all_state(model), key=lambda v: v.path):
        digest.update(variable.path.encode())
        digest.update(np.ascontiguousarray(variable.numpy()).tobytes())
    return digest.hexdigest()[:16]


def _all_state(model: MMALI) -> list:
    return list(model.variables) + list(model.d_optimizer.variables) + list(model.g_optimizer.variables)


def _distributed_dataset(config, splits, pairs, start_step, pools, strategy):
    dataset = training_data.training_pipeline(config, splits, pairs, start_step, pools)
    if strategy.num_replicas_in_sync == 1:
        return dataset
    replicas = strategy.num_replicas_in_sync

    def per_pipeline(context: tf.distribute.InputContext):
        local = replicas // context.num_input_pipelines
        return training_data.replica_rows(dataset, context.input_pipeline_id * local, local, replicas)

    return strategy.distribute_datasets_from_function(per_pipeline)


def _train(model, strategy, dataset, monitor, start_step, role, checkpoints):
    t = model.config.train
    steps = t.steps_per_execution
    step_fn = make_step_function(model, strategy, steps)
    iterator = iter(dataset)
    step = start_step
    scratch = tempfile.mkdtemp(prefix="mmali_preemption_") if t.strategy == "multi_worker" else None
    preemption = _preemption_handler(strategy, checkpoints, scratch) if scratch else None
    with contextlib.ExitStack() as cleanup:
        if scratch:
            cleanup.callback(shutil.rmtree, scratch, True)
        stop = cleanup.enter_context(_SignalStop() if preemption is None else _forward_sigint_to_sigterm())
        while step < t.max_iter:
            try:
                if steps > 1 and t.max_iter - step < steps:  # the last, shorter execution
                    step_fn = make_step_function(model, strategy, t.max_iter - step)
                scalars = step_fn(iterator)
            except _PEER_ERRORS as exc:
                if t.strategy != "multi_worker":
                    raise
                resume = (f"resume from {monitor.last_checkpoint}" if monitor.last_checkpoint
                          else "start again (no checkpoint yet)")
                raise MMALIError(f"lost contact with the other workers at step {step} ({type(exc).__name__}); "
                                 f"rerun the same command on every worker to {resume}") from None
            step = int(model.d_optimizer.iterations.numpy())
            monitor.after_step(step, {k: v.numpy() for k, v in scalars.items()})
            if preemption is not None:
                preemption.save_checkpoint_if_preempted()
            elif stop.signum is not None:
                monitor.log(step)
                path = checkpoints.save(step) if monitor.last_saved != step else monitor.last_checkpoint
                raise Stopped(stop.signum, step, path)


@contextlib.contextmanager
def _forward_sigint_to_sigterm():
    """Multi-worker: Ctrl-C goes through the preemption handler's SIGTERM path (all workers save and stop)."""
    state = type("SignalState", (), {"signum": None})()

    def forward(signum, frame):
        state.signum = signal.SIGINT
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, forward)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def _preemption_handler(strategy, checkpoints, scratch: str):
    """TensorFlow's handler: on SIGTERM at any worker, every worker saves at the same step, then stops. It gets an
    empty checkpoint of its own (in ``scratch``) and saves ours through ``save_fn``."""
    model = checkpoints.manager.checkpoint.model
    saved = {}

    def save():
        saved["step"] = int(model.d_optimizer.iterations.numpy())
        saved["path"] = checkpoints.save(saved["step"])

    def stop():
        raise Stopped(signal.SIGTERM, saved.get("step", -1), saved.get("path"))

    config = tf.distribute.experimental.TerminationConfig(exit_fn=stop, save_fn=save)
    return tf.distribute.experimental.PreemptionCheckpointHandler(
        strategy.cluster_resolver, tf.train.Checkpoint(), checkpoint_dir=scratch, termination_config=config)
