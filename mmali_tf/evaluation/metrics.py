"""The metric registry: every group of evaluation metrics, what it measures, which models it applies to, and how
its values are named, bounded and shown.

A :class:`Metric` is one group that ``--metrics`` can select (``latent``, ``cross``, ``joint``, ``synergy``,
``correlation``); ``ALIASES`` name sets of them (``coherence``, ``all``). ``mmali_tf.evaluate`` runs the selected
groups that apply to the model (a group that does not apply is skipped when selected through an alias and refused
when named), :mod:`mmali_tf.evaluation.report` validates, describes and orders ``metrics.json`` keys through the
entries, and the ``--metrics`` help text lists them. A new metric is a module with its computation plus one
registration line here.

Which models a group applies to follows from the modality kinds and datasets: coherence needs a classifier for
every modality's kind (``mmali_tf.kinds``) and labelled tuples; the latent probe needs class labels in the train
and test splits (datasets paired by label, or paired by row with labels in every file: :func:`labelled`); CCA
correlation needs two or more feature-vector modalities, or image modalities paired by row without labels
(:func:`correlation_modalities`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from mmali_tf import kinds
from mmali_tf.data.datasets import DATASETS
from mmali_tf.errors import ConfigError
from mmali_tf.evaluation import coherence, correlation, latent
from mmali_tf.registry import Registry


@dataclasses.dataclass(frozen=True)
class Metric:
    """One metric group.

    Attributes:
        name: the ``--metrics`` name.
        description: one line for the help text.
        applies: ``applies(config) -> str`` : "" if the group has something to measure for this experiment, else
            why not (shown when it is skipped or refused).
        run: ``run(context) -> {key: value}`` (:class:`mmali_tf.evaluate.EvalContext`).
        keys: regular expression of the ``metrics.json`` keys the group writes.
        value_range: (low, high) every value must lie in.
        percent: shown as a percentage (fractions) or as a plain number (cosines).
        describe: ``describe(key) -> str``, the "what" column of the Markdown table.
        needs_classifiers: the group reads the coherence classifiers (loaded before the model, to fail fast).
        sort_key: ``sort_key(key) -> int``, the key's place within the group in tables (ties: alphabetical).
    """

    name: str
    description: str
    applies: Callable
    run: Callable
    keys: str
    value_range: tuple[float, float] = (0.0, 1.0)
    percent: bool = True
    describe: Callable[[str], str] = lambda key: ""
    needs_classifiers: bool = False
    sort_key: Callable[[str], int] = lambda key: 0

    def matches(self, key: str) -> bool:
        return re.fullmatch(self.keys, key) is not None


METRICS: Registry[Metric] = Registry("metric")


def metric_of(key: str) -> Metric | None:
    """The registered group that writes ``key``, or None."""
    return next((metric for metric in METRICS.entries() if metric.matches(key)), None)


# ------------------------------------------------------------------------------------------------ applicability
def _dataset_pairing(config) -> str:
    return DATASETS.get(config.model.modalities[0].dataset).pairing


def labelled(config) -> bool:
    """Whether every modality's data carries class labels: always for datasets paired by label; for datasets
    paired by row, when each dataset says so for its modality (``Dataset.has_labels``, e.g. image files with
    ``labels``)."""
    if _dataset_pairing(config) == "label":
        return True
    for spec in config.model.modalities:
        dataset = DATASETS.get(spec.dataset)
        if dataset.has_labels is None or not dataset.has_labels(config.data.data_dir, spec.name):
            return False
    return True


def _may_have_labels(config) -> bool:
    """Some dataset of a config paired by row can carry labels (so the reasons below name them)."""
    return any(DATASETS.get(s.dataset).has_labels is not None for s in config.model.modalities)


def _coherence_applies(config) -> str:
    missing = [s.name for s in config.model.modalities if kinds.kind_of(s).classifier() is None]
    if missing:
        return f"no coherence classifier for the kind of {', '.join(missing)}"
    if not labelled(config):
        if _may_have_labels(config):
            return "coherence needs class labels in every modality's train and test files; these have none"
        return "coherence scores same-label tuples; these datasets are paired by row"
    return ""


def _latent_applies(config) -> str:
    if not labelled(config):
        if _may_have_labels(config):
            return "the probe needs class labels in every modality's train and test files; these have none"
        return "the probe needs class labels shared by train and test (datasets paired by label)"
    return ""


def feature_modalities(config) -> list[str]:
    """The names of the config's feature-vector modalities, in config order."""
    return [s.name for s in config.model.modalities if kinds.kind_of(s).examples == kinds.FEATURES]


def _row_paired_images(config) -> list[str]:
    if _dataset_pairing(config) == "label":
        return []
    return [s.name for s in config.model.modalities if kinds.kind_of(s).examples == kinds.PIXELS]


def correlation_modalities(config) -> list[str]:
    """The modalities the CCA correlation metric compares, in config order: every feature modality, and the image
    modalities of datasets paired by row when coherence does not apply (their data has no labels, or another
    modality has no classifier)."""
    images = _row_paired_images(config)
    if images and not _coherence_applies(config):
        images = []
    return [s.name for s in config.model.modalities if s.name in images or s.name in feature_modalities(config)]


def _correlation_applies(config) -> str:
    if len(correlation_modalities(config)) >= 2:
        return ""
    if _row_paired_images(config):
        return ("CCA correlation needs two or more feature modalities, or image modalities without labels "
                "(labelled images are scored by coherence)")
    return "CCA correlation needs two or more feature modalities"


# ------------------------------------------------------------------------------------------------ runners
def _run_latent(ctx) -> dict:
    probe = ctx.probe_settings
    ctx.print_fn(f"latent probe ({ctx.options.protocol} protocol, {probe.epochs} epochs)")
    return latent.latent_accuracy(ctx.model, ctx.train_splits(), ctx.test_splits(), ctx.options.protocol, probe,
                                  ctx.encodings, batch_size=ctx.options.batch_size, jit_compile=ctx.options.xla,
                                  print_fn=ctx.print_fn)


def _cross_and_synergy(ctx) -> dict:
    """Cross coherence and synergy come from one pass over the test tuples; computed once for both groups."""
    def compute():
        return coherence.cross_and_synergy(ctx.model, ctx.test_splits(), ctx.test_pairs(), ctx.classifiers,
                                           ctx.coherence_settings, cross="cross" in ctx.selected,
                                           synergy="synergy" in ctx.selected, encodings=ctx.encodings,
                                           print_fn=ctx.print_fn)

    return ctx.memo("cross_and_synergy", compute)


def _run_cross(ctx) -> dict:
    return {k: v for k, v in _cross_and_synergy(ctx).items() if k.startswith("coherence/")}


def _run_synergy(ctx) -> dict:
    return {k: v for k, v in _cross_and_synergy(ctx).items() if k.startswith("synergy/")}


def _run_joint(ctx) -> dict:
    return coherence.joint_coherence(ctx.model, ctx.classifiers, ctx.coherence_settings, print_fn=ctx.print_fn)


def _run_correlation(ctx) -> dict:
    return correlation.correlation_metrics(ctx, correlation_modalities(ctx.config))


# ------------------------------------------------------------------------------------------------ descriptions
_LATENT = {  # in table order
    "latent_acc": "linear probe on the full latent, test accuracy (final epoch)",
    "latent_acc_max": "linear probe on the full sampled latent, max test accuracy over epochs (reference)",
    "latent_acc_content": "linear probe on the content dims only (final epoch)",
    "latent_acc_content_max": "content-only probe, max over epochs (reference)",
    "latent_acc_style": "linear probe on the style dims only (final epoch)",
    "latent_acc_style_max": "style-only probe, max over epochs (reference)",
}


def _describe_latent(key: str) -> str:
    return _LATENT.get(key.partition("/")[0], "")


def _latent_order(key: str) -> int:
    prefix = key.partition("/")[0]
    return list(_LATENT).index(prefix) if prefix in _LATENT else len(_LATENT)


def _correlation_order(key: str) -> int:
    """ground truth, the cross directions, joint, synergy (the reference's print order)."""
    name = key.partition("/")[2]
    for rank, start in ((0, "ground_truth"), (2, "joint"), (3, "synergy_")):
        if name.startswith(start):
            return rank
    return 1


def _describe_cross(key: str) -> str:
    a, _, b = key.partition("/")[2].partition("_to_")
    return f"cross coherence {a} -> {b} over the test pairs (source style kept)"


def _describe_joint(key: str) -> str:
    if key == "coherence/joint_chance":
        return "agreement expected from each decoder's predicted-class frequencies alone (independence)"
    return "joint coherence: one prior z decoded by every decoder, all classifiers agree"


def _describe_correlation(key: str) -> str:
    name = key.partition("/")[2]
    if name.startswith("ground_truth"):
        return "CCA correlation of the real test pairs (the ceiling)"
    if name.startswith("joint"):
        return "CCA correlation of the decodings of one prior z (10,000 draws, one batch)"
    if name.startswith("synergy_"):
        return "CCA correlation with a decoding from own style + geometric-mean joint content"
    a, _, b = name.partition("_to_")
    return f"CCA correlation of real {a} and {b} generated from it (source style kept)"


_NAME = r"[A-Za-z0-9_.-]+"

METRICS.register(Metric(
    name="latent", description="linear probe of the latent (labels)", applies=_latent_applies, run=_run_latent,
    keys=rf"latent_acc(_content|_style)?(_max)?/{_NAME}", describe=_describe_latent,
    sort_key=_latent_order))
METRICS.register(Metric(
    name="cross", description="cross coherence a -> b (classifiers)", applies=_coherence_applies, run=_run_cross,
    keys=rf"coherence/(?!joint$|joint_chance$){_NAME}", describe=_describe_cross, needs_classifiers=True))
METRICS.register(Metric(
    name="joint", description="joint coherence of prior samples (classifiers)", applies=_coherence_applies,
    run=_run_joint, keys=r"coherence/joint(_chance)?", describe=_describe_joint, needs_classifiers=True))
METRICS.register(Metric(
    name="synergy", description="coherence from the joint content (classifiers)", applies=_coherence_applies,
    run=_run_synergy, keys=rf"synergy/{_NAME}",
    describe=lambda key: "synergy: geometric-mean joint content + own style, over the test pairs",
    needs_classifiers=True))
METRICS.register(Metric(
    name="correlation", description="CCA correlation of feature or unlabelled image modalities (CUB)", applies=_correlation_applies,
    run=_run_correlation, keys=rf"correlation/{_NAME}", value_range=(-1.0, 1.0), percent=False,
    describe=_describe_correlation, sort_key=_correlation_order))

ALIASES = {"coherence": ("cross", "joint", "synergy"), "all": None}  # None: every registered group
"""Names that select several groups."""


def parse_metrics(items) -> tuple[str, ...]:
    """``["latent", "coherence"]`` → ``("latent", "cross", "joint", "synergy")``, in registry order."""
    chosen = set()
    for item in items:
        item = item.strip()
        if not item:
            continue
        if item in ALIASES:
            chosen.update(ALIASES[item] or METRICS.names())
        elif item in METRICS:
            chosen.add(item)
        else:
            raise ConfigError(f"unknown metric {item!r}: choose from {', '.join(METRICS.names() + tuple(ALIASES))}")
    if not chosen:
        raise ConfigError("--metrics selects nothing")
    return tuple(m for m in METRICS.names() if m in chosen)


def select(config, chosen, explicit=()) -> tuple[tuple[str, ...], dict[str, str]]:
    """(groups to run, {skipped group: why}). A group in ``explicit`` (named on the command line, not through an
    alias) that does not apply is a ``ConfigError``; if nothing applies at all, too."""
    run, skipped = [], {}
    for name in chosen:
        why = METRICS.get(name).applies(config)
        if why and name in explicit:
            raise ConfigError(f"metric {name!r} does not apply to this model: {why}")
        (skipped.__setitem__(name, why) if why else run.append(name))
    if not run:
        raise ConfigError("none of the selected metrics applies to this model: "
                          + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    return tuple(run), skipped


def help_text() -> str:
    groups = ", ".join(f"{m.name} ({m.description})" for m in METRICS.entries())
    aliases = ", ".join(f"{a} = {','.join(v) if v else 'every group that applies'}" for a, v in ALIASES.items())
    return f"Metric groups: {groups}; {aliases}. Groups that do not apply to the model are skipped."
