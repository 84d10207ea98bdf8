"""Evaluate a run: ``python -m mmali_tf.evaluate --workdir=runs/x [--checkpoint=...] [--metrics=latent,coherence]
[--protocol=clean|reference] [--classifier_dir=...]``.

Restores the EMA encoders/decoders of the latest (or the given) checkpoint, computes the metrics of
:mod:`mmali_tf.evaluation`, prints a Markdown table and writes ``<workdir>/metrics.json`` and ``metrics.md``
(``metrics_reference.*`` under ``--protocol=reference``), appends to ``metrics_history.jsonl`` and logs every value to
TensorBoard (``<workdir>/tensorboard``) at the checkpoint's step. Coherence classifiers are read from
``--classifier_dir`` (default ``$MMALI_CLASSIFIER_DIR``, else ``<workdir>/classifiers``), trained there if missing,
and refused if their checksum does not match.

Training calls :func:`evaluate_in_training` every ``--eval_every`` steps and at the end with ``--eval_at_end``.
"""

from __future__ import annotations

from mmali_tf import cli

import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

from absl import flags  # noqa: E402

from mmali_tf.errors import ConfigError, MMALIError  # noqa: E402

METRIC_GROUPS = ("latent", "cross", "joint", "synergy")
ALIASES = {"coherence": ("cross", "joint", "synergy"), "all": METRIC_GROUPS}
CLASSIFIER_DIR_ENV = "MMALI_CLASSIFIER_DIR"


def parse_metrics(items) -> tuple[str, ...]:
    """``["latent", "coherence"]`` → ``("latent", "cross", "joint", "synergy")`` in canonical order."""
    chosen = set()
    for item in items:
        item = item.strip()
        if not item:
            continue
        if item in ALIASES:
            chosen.update(ALIASES[item])
        elif item in METRIC_GROUPS:
            chosen.add(item)
        else:
            raise ConfigError(f"unknown metric {item!r}: choose from {', '.join(METRIC_GROUPS + tuple(ALIASES))}")
    if not chosen:
        raise ConfigError("--metrics selects nothing")
    return tuple(m for m in METRIC_GROUPS if m in chosen)


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    metrics: tuple[str, ...] = METRIC_GROUPS
    protocol: str = "clean"
    classifier_dir: str | None = None  # None: $MMALI_CLASSIFIER_DIR, else <workdir>/classifiers
    train_classifiers: bool = True
    classifier_epochs: int = 0  # 0: per-kind defaults (classifiers.DEFAULT_EPOCHS)
    probe_epochs: int = 100
    batch_size: int = 1000
    num_prior: int = 10_000
    max_pairs: int = 0
    seed: int = 0
    xla: bool = False
    tensorboard: bool = True

    def resolved_classifier_dir(self, workdir: str) -> str:
        return self.classifier_dir or os.environ.get(CLASSIFIER_DIR_ENV) or os.path.join(workdir, "classifiers")


def load_classifiers(config, options: EvalOptions, workdir: str, print_fn=print) -> tuple[dict, dict]:
    """{modality: ModalityClassifier} and {modality: sidecar info}; one classifier per (kind, dataset)."""
    from mmali_tf.data import load_dataset
    from mmali_tf.evaluation import classifiers as clf
    from mmali_tf.evaluation.report import data_label

    directory = options.resolved_classifier_dir(workdir)
    settings = clf.TrainSettings(epochs=options.classifier_epochs or None, seed=options.seed)
    d = config.data
    cache, out, infos = {}, {}, {}
    for spec in config.model.modalities:
        key = (spec.kind, spec.dataset)
        if key not in cache:
            train = load_dataset(spec.dataset, "train", d.data_dir, tfds_data_dir=d.tfds_data_dir, download=d.download)
            test = load_dataset(spec.dataset, "test", d.data_dir, tfds_data_dir=d.tfds_data_dir, download=d.download)
            model, info = clf.get_classifier(spec.kind, spec.dataset, train, test, directory, options.protocol,
                                             settings, train_if_missing=options.train_classifiers, print_fn=print_fn)
            info = {k: v for k, v in info.items() if k != "history"}
            cache[key] = (model, {**info, "data_label": data_label(spec.dataset, train.source)})
        model, info = cache[key]
        out[spec.name] = clf.ModalityClassifier(model, spec.quarter_turns, info)
        infos[spec.name] = {**info, "quarter_turns": spec.quarter_turns}
    return out, infos


@contextlib.contextmanager
def _expected_retracing_quiet():
    """Each metric builds its own tf.functions (closures over networks and data), so TensorFlow's "frequent
    retracing" warning is expected here; silence TensorFlow's Python warnings while evaluating."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def evaluate_model(model, config, workdir: str, step: int, checkpoint: str | None,
                   options: EvalOptions = EvalOptions(), print_fn=print, write: bool = True,
                   classifiers: tuple[dict, dict] | None = None, notes: tuple[str, ...] = ()) -> dict:
    """Every selected metric of ``model`` (an MMALI, its EMA nets); returns the metrics.json record (and writes the
    outputs into ``workdir`` when ``write``). ``classifiers``: the result of :func:`load_classifiers`, if already
    loaded."""
    with _expected_retracing_quiet():
        return _evaluate_model(model, config, workdir, step, checkpoint, options, print_fn, write, classifiers,
                               notes)


def _evaluate_model(model, config, workdir, step, checkpoint, options, print_fn, write, loaded, extra_notes) -> dict:
    from mmali_tf import training_data
    from mmali_tf.data import pairing_summary
    from mmali_tf.evaluation import classifiers as clf
    from mmali_tf.evaluation import coherence, latent, report

    clf.check_protocol(options.protocol)
    started = time.perf_counter()
    timings = {}
    metrics: dict[str, float] = {}
    wants = set(options.metrics)

    t0 = time.perf_counter()
    test_splits = training_data.load_modalities(config, "test")
    train_splits = training_data.load_modalities(config, "train") if "latent" in wants else None
    pairs = training_data.make_pairs(config, test_splits, "test") if wants & {"cross", "synergy"} else None
    timings["load_data"] = time.perf_counter() - t0

    classifiers, classifier_info = {}, {}
    if wants & {"cross", "joint", "synergy"}:
        if loaded is None:  # the command line loads them before the model (timed there, not here)
            t0 = time.perf_counter()
            loaded = load_classifiers(config, options, workdir, print_fn)
            timings["classifiers"] = time.perf_counter() - t0
        classifiers, classifier_info = loaded
        for name, info in classifier_info.items():
            print_fn(f"classifier for {name}: {info['kind']} on {info['data_label']}, test accuracy "
                     f"{info['test_accuracy']:.4f} ({os.path.basename(info['path'])})")

    encodings: dict = {}
    probe = latent.ProbeSettings(epochs=options.probe_epochs, seed=options.seed)
    coh = coherence.CoherenceSettings(batch_size=options.batch_size, num_prior=options.num_prior, seed=options.seed,
                                      max_pairs=options.max_pairs, jit_compile=options.xla)
    if "latent" in wants:
        t0 = time.perf_counter()
        print_fn(f"latent probe ({options.protocol} protocol, {probe.epochs} epochs)")
        metrics.update(latent.latent_accuracy(model, train_splits, test_splits, options.protocol, probe, encodings,
                                              batch_size=options.batch_size, jit_compile=options.xla,
                                              print_fn=print_fn))
        timings["latent"] = time.perf_counter() - t0
    if wants & {"cross", "synergy"}:
        t0 = time.perf_counter()
        metrics.update(coherence.cross_and_synergy(model, test_splits, pairs, classifiers, coh,
                                                   cross="cross" in wants, synergy="synergy" in wants,
                                                   encodings=encodings, print_fn=print_fn))
        timings["cross_synergy"] = time.perf_counter() - t0
    if "joint" in wants:
        t0 = time.perf_counter()
        metrics.update(coherence.joint_coherence(model, classifiers, coh, print_fn=print_fn))
        timings["joint"] = time.perf_counter() - t0

    data = {}
    for spec in config.model.modalities:
        test = test_splits[spec.name]
        entry = {"dataset": spec.dataset, "kind": spec.kind, "quarter_turns": spec.quarter_turns,
                 "label": report.data_label(spec.dataset, test.source), "test": report.split_record(test)}
        if train_splits is not None:
            entry["train"] = report.split_record(train_splits[spec.name])
        data[spec.name] = entry
    pairing = None
    if pairs is not None:
        num = len(next(iter(pairs.values())))
        pairing = {"split": "test", "num_pairs": num, "evaluated_pairs": min(num, options.max_pairs or num),
                   "data_multiplication": config.data.data_multiplication, "use_all": True, "percentage": 1.0,
                   "seed": config.data.seed + 1, "summary": pairing_summary(pairs)}
    notes = list(extra_notes)
    if any("stand-in" in d["label"] for d in data.values()):
        notes.append("SVHN stand-in: synthetic digits in SVHN's layout, not genuine SVHN; figures are not comparable "
                     "with the paper's SVHN numbers.")
    if options.max_pairs and pairing and pairing["evaluated_pairs"] < pairing["num_pairs"]:
        notes.append(f"only {options.max_pairs:,} evenly spaced test pairs (all classes) were evaluated (--max_pairs).")
    settings = {"metrics": list(options.metrics), "seed": options.seed, "batch_size": options.batch_size,
                "probe": dataclasses.asdict(probe), "probe_features": "sampled latent" if options.protocol ==
                "reference" else "posterior mean",
                "coherence": dataclasses.asdict(coh), "classifier_dir": options.resolved_classifier_dir(workdir),
                "classifier_epochs": options.classifier_epochs or dict(clf.DEFAULT_EPOCHS)}
    record = report.build_record(metrics=metrics, protocol=options.protocol, step=step, checkpoint=checkpoint,
                                 workdir=workdir, data=data, pairing=pairing, classifiers=classifier_info,
                                 settings=settings, wall_time=time.perf_counter() - started, timings=timings,
                                 notes=notes)
    if write:
        record["outputs"] = report.write_outputs(record, workdir, log_to_tensorboard=options.tensorboard)
    return record


def evaluate_in_training(model, workdir: str, step: int) -> dict | None:
    """Called by ``mmali_tf.train`` every ``eval_every`` steps and at the end: evaluate the live model's EMA nets
    with the default (clean) protocol and write the outputs. A user-facing error (e.g. a classifier failing its
    checksum) is printed as one line and training continues."""
    import tensorflow as tf

    from mmali_tf import checkpointing
    from mmali_tf.evaluation import report

    latest = tf.train.latest_checkpoint(checkpointing.checkpoint_dir(workdir))
    checkpoint = latest if latest and latest.endswith(f"-{int(step)}") else None
    print(f"evaluating at step {step} (EMA networks)", flush=True)
    try:
        record = evaluate_model(model, model.config, workdir, int(step), checkpoint, EvalOptions(),
                                print_fn=lambda s: print(s, flush=True))
    except MMALIError as exc:
        print(f"error: evaluation at step {step} failed: {exc}", flush=True)
        return None
    print(report.metrics_table(record["metrics"]), flush=True)
    return record


# ------------------------------------------------------------------------------------------------------------------
# Command line

F = flags.FLAGS


def define_flags() -> None:
    """The command-line flags; defined on demand so that ``mmali_tf.train`` can import this module."""
    if "protocol" in F:
        return
    flags.DEFINE_string("workdir", None, "Run directory written by mmali_tf.train (config.json, checkpoints/).",
                        required=True)
    flags.DEFINE_string("checkpoint", None, "Checkpoint to evaluate (default: the latest in <workdir>/checkpoints).")
    flags.DEFINE_list("metrics", ["all"],
                      "Metric groups: latent, cross, joint, synergy; coherence = cross,joint,synergy; all.")
    flags.DEFINE_enum("protocol", "clean", ["clean", "reference"],
                      "clean: classifiers selected on held-out train data, posterior-mean probe, final epoch. "
                      "reference: the authors' protocol (test-set selection, always-on MNIST-classifier dropout, "
                      "sampled-latent probe with max over epochs).")
    flags.DEFINE_string("classifier_dir", None, f"Coherence classifiers directory (default ${CLASSIFIER_DIR_ENV}, else "
                        "<workdir>/classifiers); share one between runs to reuse classifiers.")
    flags.DEFINE_bool("train_classifiers", True, "Train missing classifiers (otherwise a missing one is an error).")
    flags.DEFINE_integer("classifier_epochs", 0, "Classifier training epochs; 0 = per-kind defaults.", lower_bound=0)
    flags.DEFINE_integer("probe_epochs", 100, "Linear-probe epochs (reference: 100).", lower_bound=1)
    flags.DEFINE_integer("batch_size", 1000, "Evaluation batch size.", lower_bound=1)
    flags.DEFINE_integer("num_prior", 10_000, "Prior samples for joint coherence.", lower_bound=1)
    flags.DEFINE_integer("max_pairs", 0, "Evaluate N evenly spaced test pairs (0 = all 300,000; for quick checks).",
                         lower_bound=0)
    flags.DEFINE_integer("seed", 0, "Seed of the evaluation noise, the probe and classifier training.", lower_bound=0)
    flags.DEFINE_bool("xla", False, "jit_compile the evaluation functions (slower for these convs on CPU).")
    flags.DEFINE_string("data_dir", None, "Override the run's data directory.")
    flags.DEFINE_bool("untrained", False, "Evaluate the freshly initialised model of the run's config (no checkpoint).")
    flags.DEFINE_bool("tensorboard", True, "Log the metrics to <workdir>/tensorboard.")


def main(argv) -> None:
    del argv
    import keras

    from mmali_tf import checkpointing, rundir
    from mmali_tf.config import ExperimentConfig
    from mmali_tf.evaluation import report
    from mmali_tf.model import MMALI
    from mmali_tf.paths import output_dir_problem

    started = time.perf_counter()
    workdir = F.workdir
    if not os.path.isdir(workdir):
        raise ConfigError(f"--workdir {workdir} " + ("is not a directory" if os.path.exists(workdir) else
                                                     "does not exist"))
    rundir.check_writable(workdir)  # the metrics are written into it
    config = ExperimentConfig.from_json_file(os.path.join(workdir, "config.json"))
    if F.data_dir:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, data_dir=F.data_dir))
    config = config.validate()
    options = EvalOptions(metrics=parse_metrics(F.metrics), protocol=F.protocol, classifier_dir=F.classifier_dir,
                          train_classifiers=F.train_classifiers, classifier_epochs=F.classifier_epochs,
                          probe_epochs=F.probe_epochs, batch_size=F.batch_size, num_prior=F.num_prior,
                          max_pairs=F.max_pairs, seed=F.seed, xla=F.xla, tensorboard=F.tensorboard)
    if F.untrained and F.checkpoint:
        raise ConfigError("--untrained and --checkpoint exclude each other")
    problem = output_dir_problem(options.resolved_classifier_dir(workdir))
    if problem:
        raise ConfigError(f"cannot use the classifier directory: {problem}")
    # The networks exactly as training.build_model initialises them (same seed, same construction order), without
    # the optimizers and discriminator tracing that evaluation does not need. The checkpoint is restored before any
    # expensive work (classifiers, metrics); every evaluation draw is seeded on its own, so the order is free.
    keras.utils.set_random_seed(config.train.seed)
    model = MMALI(config)
    if F.untrained:
        checkpoint, step = None, 0
        print(f"evaluating the freshly initialised model (seed {config.train.seed}) of {workdir}", flush=True)
    else:
        checkpoint, step = checkpointing.restore_ema_only(model, workdir, F.checkpoint)
        print(f"evaluating {checkpoint} (step {step})", flush=True)
    loaded = None
    if set(options.metrics) & {"cross", "joint", "synergy"}:
        loaded = load_classifiers(config, options, workdir, print_fn=lambda s: print(s, flush=True))
    notes = (f"freshly initialised (untrained) model, seed {config.train.seed}; no checkpoint",) if F.untrained else ()
    record = evaluate_model(model, config, workdir, step, checkpoint, options,
                            print_fn=lambda s: print(s, flush=True), classifiers=loaded, notes=notes)
    print()
    print(report.markdown(record), end="")
    print(f"\nwrote {record['outputs']['json']} and {record['outputs']['md']}; total "
          f"{report.format_seconds(time.perf_counter() - started)}", flush=True)


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
