"""Evaluate a run: ``python -m mmali_tf.evaluate --workdir=runs/x [--checkpoint=...] [--metrics=latent,coherence]
[--protocol=clean|reference] [--classifier_dir=...] [--cca_solver=eigh|eig]``.

Restores the EMA encoders/decoders of the latest (or the given) checkpoint, computes the selected metric groups of
the registry :mod:`mmali_tf.evaluation.metrics` that apply to the model (coherence and the latent probe for the
digit experiments, CCA correlation for feature modalities such as CUB's; ``--metrics=all``, the default, runs every
group that applies), prints a Markdown table and writes ``<workdir>/metrics.json`` and ``metrics.md``
(``metrics_reference.*`` under ``--protocol=reference``, ``metrics_live.*`` with ``--weights=live``), appends to ``metrics_history.jsonl`` and logs every value to
TensorBoard (``<workdir>/tensorboard``) at the checkpoint's step. Coherence classifiers are read from
``--classifier_dir`` (default ``$MMALI_CLASSIFIER_DIR``, else ``<workdir>/classifiers``), trained there if missing,
and refused if their checksum does not match. The CCA of the correlation metric is fitted on the train pairs and
cached in the same directory, keyed by a fingerprint of the train data.

Training calls :func:`evaluate_in_training` every ``--eval_every`` steps and at the end with ``--eval_at_end``.
"""

from __future__ import annotations

from mmali_tf import cli

import contextlib  # noqa: E402
import dataclasses  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from mmali_tf import checkpointing, checks, rundir, training_data  # noqa: E402
from mmali_tf.config import ExperimentConfig  # noqa: E402
from mmali_tf.data import DATASETS, data_label, load_dataset  # noqa: E402
from mmali_tf.errors import ConfigError, MMALIError  # noqa: E402
from mmali_tf.evaluation import classifiers as clf  # noqa: E402
from mmali_tf.evaluation import coherence, latent, metrics, report  # noqa: E402
from mmali_tf.evaluation.progress import format_seconds  # noqa: E402
from mmali_tf.model import MMALI  # noqa: E402
from mmali_tf.paths import output_dir_problem  # noqa: E402

CLASSIFIER_DIR_ENV = "MMALI_CLASSIFIER_DIR"


def parse_metrics(items) -> tuple[str, ...]:
    """``["latent", "coherence"]`` → ``("latent", "cross", "joint", "synergy")``: registered groups
    (:mod:`mmali_tf.evaluation.metrics`) in registry order."""
    return metrics.parse_metrics(items)


METRIC_GROUPS = parse_metrics(["all"])
"""Every registered metric group (at import time; :func:`parse_metrics` reads the registry each call)."""


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
    explicit_metrics: tuple[str, ...] = ()  # groups named on the command line: refused (not skipped) if inapplicable
    cca_solver: str = "eigh"  # "eigh" (fast, same scores) or "eig" (the authors' scipy.linalg.eig, slow at CUB size)
    weights: str = "ema"  # recorded in the settings; the caller restores the matching networks

    def resolved_classifier_dir(self, workdir: str) -> str:
        return self.classifier_dir or os.environ.get(CLASSIFIER_DIR_ENV) or os.path.join(workdir, "classifiers")


def load_classifiers(config, options: EvalOptions, workdir: str, print_fn=print) -> tuple[dict, dict]:
    """{modality: ModalityClassifier} and {modality: sidecar info}; one classifier per (kind, dataset), and per
    modality for datasets whose files are the modality's own (``Dataset.per_modality``, e.g. ``image``)."""
    directory = options.resolved_classifier_dir(workdir)
    settings = clf.TrainSettings(epochs=options.classifier_epochs or None, seed=options.seed)
    d = config.data
    cache, out, infos = {}, {}, {}
    for spec in config.model.modalities:
        own = DATASETS.get(spec.dataset).per_modality
        key = (spec.kind, spec.dataset) + ((spec.name,) if own else ())
        if key not in cache:
            train, test = (load_dataset(spec.dataset, split, d.data_dir, modality=spec.name,
                                        tfds_data_dir=d.tfds_data_dir, download=d.download)
                           for split in ("train", "test"))
            model, info = clf.get_classifier(spec.kind, spec.dataset, train, test, directory, options.protocol,
                                             settings, train_if_missing=options.train_classifiers, print_fn=print_fn,
                                             modality=spec.name if own else None)
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


class EvalContext:
    """What the metric groups of one evaluation share: the model, its config and options, the data (loaded on first
    use), the classifiers, the encodings of the test examples and a memo for results computed once for several
    groups. Passed to each :class:`mmali_tf.evaluation.metrics.Metric`'s ``run``."""

    def __init__(self, model, config, workdir: str, options: EvalOptions, selected, classifiers: dict,
                 print_fn=print):
        self.model, self.config, self.workdir, self.options = model, config, workdir, options
        self.selected = tuple(selected)
        self.classifiers = classifiers
        self.print_fn = print_fn
        self.encodings: dict = {}
        self.probe_settings = latent.ProbeSettings(epochs=options.probe_epochs, seed=options.seed)
        self.coherence_settings = coherence.CoherenceSettings(
            batch_size=options.batch_size, num_prior=options.num_prior, seed=options.seed,
            max_pairs=options.max_pairs, jit_compile=options.xla)
        self.timings: dict[str, float] = {}
        self.settings: dict = {}  # per-group settings a metric records for metrics.json
        self._memo: dict = {}

    def memo(self, key, compute):
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def _timed_load(self, key, compute):
        def timed():
            t0 = time.perf_counter()
            value = compute()
            self.timings["load_data"] = self.timings.get("load_data", 0.0) + time.perf_counter() - t0
            return value
        return self.memo(key, timed)

    def test_splits(self) -> dict:
        return self._timed_load("test_splits", lambda: training_data.load_modalities(self.config, "test"))

    def train_splits(self) -> dict:
        return self._timed_load("train_splits", lambda: training_data.load_modalities(self.config, "train"))

    def test_pairs(self) -> dict:
        return self._timed_load("test_pairs", lambda: training_data.make_pairs(self.config, self.test_splits(),
                                                                                 "test"))

    def train_pairs(self) -> dict:
        return self._timed_load("train_pairs", lambda: training_data.make_pairs(self.config, self.train_splits(),
                                                                                  "train"))

    def loaded(self, key: str) -> bool:
        return key in self._memo


def _evaluate_model(model, config, workdir, step, checkpoint, options, print_fn, write, loaded, extra_notes) -> dict:
    clf.check_protocol(options.protocol)
    started = time.perf_counter()
    selected, skipped = metrics.select(config, options.metrics, options.explicit_metrics)
    for name, why in skipped.items():
        print_fn(f"metric {name} skipped: {why}")
    classifiers, classifier_info = {}, {}
    if any(metrics.METRICS.get(name).needs_classifiers for name in selected):
        if loaded is None:  # the command line loads them before the model (timed there, not here)
            t0 = time.perf_counter()
            loaded = load_classifiers(config, options, workdir, print_fn)
            classifier_seconds = time.perf_counter() - t0
        else:
            classifier_seconds = None
        classifiers, classifier_info = loaded
        for name, info in classifier_info.items():
            print_fn(f"classifier for {name}: {info['kind']} on {info['data_label']}, test accuracy "
                     f"{info['test_accuracy']:.4f} ({os.path.basename(info['path'])})")
    else:
        classifier_seconds = None

    ctx = EvalContext(model, config, workdir, options, selected, classifiers, print_fn)
    ctx.test_splits()
    if classifier_seconds is not None:
        ctx.timings["classifiers"] = classifier_seconds
    values: dict[str, float] = {}
    for name in selected:
        t0 = time.perf_counter()
        values.update(metrics.METRICS.get(name).run(ctx))
        ctx.timings[name] = time.perf_counter() - t0

    data = {}
    for spec in config.model.modalities:
        test = ctx.test_splits()[spec.name]
        entry = {"dataset": spec.dataset, "kind": spec.kind, "quarter_turns": spec.quarter_turns,
                 "label": DATASETS.get(spec.dataset).label(test.source), "test": report.split_record(test)}
        if ctx.loaded("train_splits"):
            entry["train"] = report.split_record(ctx.train_splits()[spec.name])
        data[spec.name] = entry
    pairing = None
    if ctx.loaded("test_pairs"):
        pairs = ctx.test_pairs()
        num = len(next(iter(pairs.values())))
        pairing = {"split": "test", "num_pairs": num, "evaluated_pairs": min(num, options.max_pairs or num),
                   "mode": training_data.pairing_mode(config), "summary": training_data.pairing_summary(config, pairs)}
        if pairing["mode"] == "label":
            pairing.update({"data_multiplication": config.data.data_multiplication, "use_all": True,
                            "percentage": 1.0, "seed": config.data.seed + 1})
    notes = list(extra_notes)
    for spec in config.model.modalities:
        dataset = DATASETS.get(spec.dataset)
        note = dataset.standin_note
        if "stand-in" in data[spec.name]["label"] and note and note not in notes:
            notes.append(note)
    if options.max_pairs and pairing and pairing["evaluated_pairs"] < pairing["num_pairs"]:
        notes.append(f"only {options.max_pairs:,} evenly spaced test pairs (all classes) were evaluated (--max_pairs).")
    settings = {"metrics": list(selected), "skipped_metrics": skipped, "seed": options.seed,
                "batch_size": options.batch_size, "weights": options.weights}
    if "latent" in selected:
        settings.update({"probe": dataclasses.asdict(ctx.probe_settings),
                         "probe_features": "sampled latent" if options.protocol == "reference" else "posterior mean"})
    if set(selected) & {"cross", "joint", "synergy"}:
        settings.update({"coherence": dataclasses.asdict(ctx.coherence_settings),
                         "classifier_dir": options.resolved_classifier_dir(workdir),
                         "classifier_epochs": options.classifier_epochs or dict(clf.DEFAULT_EPOCHS)})
    settings.update(ctx.settings)
    record = report.build_record(metrics=values, protocol=options.protocol, step=step, checkpoint=checkpoint,
                                 workdir=workdir, data=data, pairing=pairing, classifiers=classifier_info,
                                 settings=settings, wall_time=time.perf_counter() - started, timings=ctx.timings,
                                 notes=notes)
    if write:
        record["outputs"] = report.write_outputs(record, workdir, log_to_tensorboard=options.tensorboard)
    return record


def evaluate_in_training(model, workdir: str, step: int) -> dict | None:
    """Called by ``mmali_tf.train`` every ``eval_every`` steps and at the end: evaluate the live model's EMA nets
    with the default (clean) protocol and write the outputs. A user-facing error (e.g. a classifier failing its
    checksum) is printed as one line and training continues."""
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
    flags.DEFINE_list("metrics", ["all"], metrics.help_text())
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
    flags.DEFINE_enum("cca_solver", "eigh", ["eigh", "eig"], "CCA fit of the correlation metric: eigh (symmetric "
                      "solver, fast, the same scores) or eig (the authors' scipy.linalg.eig, minutes at CUB size).")
    flags.DEFINE_enum("weights", "ema", ["ema", "live"],
                      "Generator weights to evaluate: ema (the exponential moving average, the paper's) or live (the "
                      "trained encoders and decoders; outputs metrics_live.json, TensorBoard tags <group>_live/...).")
    flags.DEFINE_bool("untrained", False, "Evaluate the freshly initialised model of the run's config (no checkpoint).")
    flags.DEFINE_bool("tensorboard", True, "Log the metrics to <workdir>/tensorboard.")


def main(argv) -> None:
    del argv
    started = time.perf_counter()
    workdir = F.workdir
    if not os.path.isdir(workdir):
        raise ConfigError(f"--workdir {workdir} " + ("is not a directory" if os.path.exists(workdir) else
                                                     "does not exist"))
    rundir.check_writable(workdir)  # the metrics are written into it
    config = ExperimentConfig.from_json_file(os.path.join(workdir, "config.json"))
    if F.data_dir:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, data_dir=F.data_dir))
    config = checks.check_registered(config.validate())
    explicit = tuple(m.strip() for m in F.metrics if m.strip() in metrics.METRICS)
    options = EvalOptions(metrics=parse_metrics(F.metrics), protocol=F.protocol, classifier_dir=F.classifier_dir,
                          train_classifiers=F.train_classifiers, classifier_epochs=F.classifier_epochs,
                          probe_epochs=F.probe_epochs, batch_size=F.batch_size, num_prior=F.num_prior,
                          max_pairs=F.max_pairs, seed=F.seed, xla=F.xla, tensorboard=F.tensorboard,
                          explicit_metrics=explicit, cca_solver=F.cca_solver, weights=F.weights)
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
        checkpoint, step = checkpointing.restore_ema_only(model, workdir, F.checkpoint, weights=F.weights)
        print(f"evaluating {checkpoint} (step {step}, {F.weights} weights)", flush=True)
    loaded = None
    selected, _ = metrics.select(config, options.metrics, options.explicit_metrics)
    if any(metrics.METRICS.get(m).needs_classifiers for m in selected):
        loaded = load_classifiers(config, options, workdir, print_fn=lambda s: print(s, flush=True))
    notes = (f"freshly initialised (untrained) model, seed {config.train.seed}; no checkpoint",) if F.untrained else ()
    record = evaluate_model(model, config, workdir, step, checkpoint, options,
                            print_fn=lambda s: print(s, flush=True), classifiers=loaded, notes=notes)
    print()
    print(report.markdown(record), end="")
    print(f"\nwrote {record['outputs']['json']} and {record['outputs']['md']}; total "
          f"{format_seconds(time.perf_counter() - started)}", flush=True)


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
