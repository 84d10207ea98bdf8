"""Export a run's EMA encoders/decoders as a SavedModel for TensorFlow Serving and ``tf.saved_model.load``.

``python -m mmali_tf.export --workdir=runs/x --export_dir=exports/mmali/1 [--checkpoint=PATH] [--overwrite]``

The export directory follows TensorFlow Serving's ``<model name>/<integer version>/`` layout. It is written into a
hidden temporary directory beside the target and renamed into place, so a server watching ``exports/mmali/``
never sees a half-written version, and an existing version is only replaced with ``--overwrite``.

Signatures, for every modality ``m`` and ordered pair of modalities ``(a, b)`` (batch dimension dynamic), shown for
image modalities; a feature-vector modality (kinds ``cub_caption``, ``cub_image``, ``vector``) takes and returns
``features`` float32 ``[B, D]`` (values as in its training data, no range) where an image modality has ``images``:

=====================================  ===========================================  ==================================
signature                              inputs                                       outputs
=====================================  ===========================================  ==================================
``encode_<m>``                         ``images`` float32 [B, H, W, C] in [0, 1]    ``mean``, ``logvar`` [B, L];
                                                                                    ``style`` [B, S], ``content``
                                                                                    [B, L-S] (slices of ``mean``)
``decode_<m>``                         ``content`` [B, L-S], ``style`` [B, S]       ``images`` float32 in [0, 1]
``translate_<a>_to_<b>``               ``images`` of ``a``                          ``images`` of ``b`` (a's style)
``translate_<a>_to_<b>_with_style``    ``images`` of ``a``, ``style`` [B, S]        ``images`` of ``b`` (given style)
``reconstruct_joint``                  one ``images`` batch per modality, keyed    one batch per modality (own
                                       by modality name, equal batch sizes          style, joint content) and
                                                                                    ``content`` (joint posterior mean)
``sample_joint``                       ``num_samples`` int32 scalar, ``seed``       one batch per modality and ``z``
                                       int64 scalar                                 (shared by every decoder)
``serving_default``                    the first ``translate_<a>_to_<b>``
=====================================  ===========================================  ==================================

Every signature that takes images also exists as ``<name>_uint8`` taking uint8 images in 0..255 (divided by 255,
as the training pipeline does); feature inputs have no uint8 variant (in a ``_uint8`` signature they stay float32).
Latent codes are posterior *means* (deterministic); ``z = [style | content]``.
``sample_joint`` draws ``z = tf.random.stateless_normal([num_samples, L], seed=[seed, 0])``, so a seed always gives
the same images. The ``_with_style`` signatures are omitted when the model has no style code (``style_dim=0``).

Inputs are checked inside the graph (also under TensorFlow Serving, which does not check shapes against the
signature): image shape, float range [0, 1] (NaN rejected), feature size and finiteness, equal batch sizes, finite
latent codes, ``num_samples`` and ``seed`` scalars, 1 <= num_samples <= MAX_SAMPLES. A failed check is an
``InvalidArgumentError`` whose message names the input and the problem. The two scalars are declared without a shape
in the SignatureDef (``saved_model_cli`` shows ``unknown_rank``) so that the graph's own check of their rank is not
optimized away.

A JSON description of the export (modalities, latent split, step, checkpoint, config, data fingerprints,
signatures, versions) is written to ``<export_dir>/assets.extra/mmali_metadata.json`` (TF Serving's place for
files that travel with a model but are not part of the graph).
"""

from __future__ import annotations

from mmali_tf import cli

import datetime  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import mmali_tf  # noqa: E402
from absl import flags, logging  # noqa: E402

from mmali_tf import checkpointing, checks, kinds, losses  # noqa: E402
from mmali_tf.config import ExperimentConfig  # noqa: E402
from mmali_tf.errors import MMALIError, os_reason  # noqa: E402
from mmali_tf.model import MMALI  # noqa: E402
from mmali_tf.paths import output_dir_problem  # noqa: E402

METADATA_PATH = os.path.join("assets.extra", "mmali_metadata.json")
FINGERPRINTS_FILE = "data_fingerprints.json"
MAX_SAMPLES = 10_000
"""Largest ``num_samples`` that ``sample_joint`` accepts (bounds the memory one request can take)."""
RESERVED_OUTPUT_KEYS = ("content", "z")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


# ---------------------------------------------------------------------------------------------- in-graph checks
def _checked(x: tf.Tensor, condition: tf.Tensor, message: str, *data) -> tf.Tensor:
    """``x``, after an assertion that fails with ``message`` (and ``data``) unless ``condition`` holds."""
    check = tf.debugging.Assert(condition, [message, *data], summarize=8)
    with tf.control_dependencies([check]):
        return tf.identity(x)


def _has_shape(x: tf.Tensor, tail: tuple[int, ...]) -> tf.Tensor:
    """True iff ``x`` has rank ``1 + len(tail)`` and its non-batch dimensions equal ``tail`` (rank-safe)."""
    rank = 1 + len(tail)
    shape = tf.shape(x)
    padded = tf.concat([shape, tf.fill([rank], -1)], axis=0)[1:rank]
    return tf.logical_and(tf.equal(tf.size(shape), rank), tf.reduce_all(tf.equal(padded, tail)))


def check_images(x: tf.Tensor, name: str, shape: tuple[int, ...]) -> tf.Tensor:
    """Validate a batch of images of modality ``name``; return them as float32 in [0, 1].

    uint8 images are divided by 255; float32 images must already be in [0, 1].
    """
    dims = ", ".join(str(d) for d in shape)
    x = _checked(x, _has_shape(x, shape), f"{name} images must have shape [batch, {dims}]; got shape", tf.shape(x))
    if x.dtype == tf.uint8:
        return tf.cast(x, tf.float32) / 255.0
    in_range = tf.reduce_all(tf.logical_and(x >= 0.0, x <= 1.0))  # False for NaN
    return _checked(x, in_range,
                    f"{name} images (float32) must lie in [0, 1] (use the _uint8 signature for 0..255 images); "
                    "got min, max", tf.reduce_min(x), tf.reduce_max(x))


def check_features(x: tf.Tensor, name: str, dim: int) -> tf.Tensor:
    """Validate a batch of feature vectors of modality ``name``: shape ``[batch, dim]`` and finite values."""
    x = _checked(x, _has_shape(x, (dim,)), f"{name} features must have shape [batch, {dim}]; got shape", tf.shape(x))
    return _checked(x, tf.reduce_all(tf.math.is_finite(x)), f"{name} features must be finite")


def check_codes(x: tf.Tensor, what: str, dim: int) -> tf.Tensor:
    """Validate a batch of latent codes ``[batch, dim]``: shape and finiteness."""
    x = _checked(x, _has_shape(x, (dim,)), f"{what} must have shape [batch, {dim}]; got shape", tf.shape(x))
    return _checked(x, tf.reduce_all(tf.math.is_finite(x)), f"{what} must be finite")


def check_scalar(x: tf.Tensor, name: str) -> tf.Tensor:
    """``x`` as a scalar, after a check that it is one (rank 0).

    The signature declares such inputs without a shape (:func:`scalar_spec`): with a declared shape ``[]``
    TensorFlow's graph optimizer takes the rank as known and removes the check, while TensorFlow Serving and loaded
    signatures pass a vector through all the same, to fail later in an op whose message names neither input."""
    x = _checked(x, tf.equal(tf.rank(x), 0), f"{name} must be a scalar (shape []); got shape", tf.shape(x))
    return tf.reshape(x, [])


def scalar_spec(dtype, name: str) -> tf.TensorSpec:
    """The input spec of a scalar input checked by :func:`check_scalar` (no declared shape, see there)."""
    return tf.TensorSpec(None, dtype, name=name)


def check_same_batch(tensors: dict[str, tf.Tensor], context: str) -> list[tf.Tensor]:
    """The tensors, after a check that they all have the same batch size."""
    names = list(tensors)
    sizes = tf.stack([tf.shape(tensors[n])[0] for n in names])
    ok = tf.reduce_all(tf.equal(sizes, sizes[0]))
    first = _checked(tensors[names[0]], ok,
                     f"{context}: {', '.join(names)} must have the same batch size; got", sizes)
    return [first] + [tensors[n] for n in names[1:]]


# ---------------------------------------------------------------------------------------------- signatures
class _Endpoints:
    """The serving functions of one model, built on its EMA networks only (``training=False``)."""

    def __init__(self, model):
        cfg = model.config.model
        self.names = list(cfg.names)
        specs = {s.name: kinds.input_spec(s) for s in cfg.modalities}
        self.shapes = {n: tuple(spec.shape) for n, spec in specs.items()}
        self.is_image = {n: spec.examples == kinds.PIXELS for n, spec in specs.items()}
        self.latent_dim, self.style_dim, self.content_dim = cfg.latent_dim, cfg.style_dim, cfg.content_dim
        self.encoders = model.ema_encoders
        self.decoders = model.ema_decoders

    # -- building blocks
    def _posterior(self, m, x):
        return losses.split_gaussian(self.encoders[m](x, training=False))

    def _decode(self, m, style, content):
        return self.decoders[m](tf.concat([style, content], axis=-1), training=False)

    def key(self, m) -> str:
        """The input / output name of modality ``m``'s examples: ``images`` or ``features``."""
        return "images" if self.is_image[m] else "features"

    def checked(self, m, x):
        """``x`` (examples of ``m``) after the in-graph checks, as the networks see them."""
        if self.is_image[m]:
            return check_images(x, m, self.shapes[m])
        return check_features(x, m, self.shapes[m][0])

    def image_spec(self, m, dtype, name=None):
        """The input spec of ``m``'s examples; ``dtype`` uint8 applies to images only (features stay float32)."""
        dtype = dtype if self.is_image[m] else tf.float32
        return tf.TensorSpec([None, *self.shapes[m]], dtype, name=name or self.key(m))

    def code_spec(self, name, dim):
        return tf.TensorSpec([None, dim], tf.float32, name=name)

    # -- the signatures
    def encode(self, m):
        def fn(images):
            mean, logvar = self._posterior(m, self.checked(m, images))
            return {"mean": mean, "logvar": logvar, "style": mean[:, : self.style_dim],
                    "content": mean[:, self.style_dim:]}
        return fn

    def decode(self, m):
        def fn(content, style):
            content = check_codes(content, "content", self.content_dim)
            style = check_codes(style, "style", self.style_dim)
            content, style = check_same_batch({"content": content, "style": style}, f"decode_{m}")
            return {self.key(m): self._decode(m, style, content)}
        return fn

    def translate(self, a, b):
        def fn(images):
            mean, _ = self._posterior(a, self.checked(a, images))
            return {self.key(b): self._decode(b, mean[:, : self.style_dim], mean[:, self.style_dim:])}
        return fn

    def translate_with_style(self, a, b):
        def fn(images, style):
            images = self.checked(a, images)
            style = check_codes(style, "style", self.style_dim)
            images, style = check_same_batch({self.key(a): images, "style": style},
                                             f"translate_{a}_to_{b}_with_style")
            mean, _ = self._posterior(a, images)
            return {self.key(b): self._decode(b, style, mean[:, self.style_dim:])}
        return fn

    def reconstruct_joint(self):
        def fn(inputs):
            images = {m: self.checked(m, inputs[m]) for m in self.names}
            images = dict(zip(self.names, check_same_batch(images, "reconstruct_joint")))
            posteriors = {m: self._posterior(m, images[m]) for m in self.names}
            joint_mean, _ = losses.geometric_mean_posterior([posteriors[m][0] for m in self.names],
                                                            [posteriors[m][1] for m in self.names])
            content = joint_mean[:, self.style_dim:]
            out = {m: self._decode(m, posteriors[m][0][:, : self.style_dim], content) for m in self.names}
            out["content"] = content
            return out
        return fn

    def reconstruct_joint_specs(self, dtype):
        return {m: self.image_spec(m, dtype, name=m) for m in self.names}

    def sample_joint(self):
        def fn(num_samples, seed):
            num_samples, seed = check_scalar(num_samples, "num_samples"), check_scalar(seed, "seed")
            ok = tf.logical_and(num_samples >= 1, num_samples <= MAX_SAMPLES)
            num_samples = _checked(num_samples, ok, f"num_samples must be in [1, {MAX_SAMPLES}]; got", num_samples)
            z = tf.random.stateless_normal(tf.stack([num_samples, self.latent_dim]),
                                           seed=tf.stack([seed, tf.constant(0, tf.int64)]))
            out = {m: self.decoders[m](z, training=False) for m in self.names}
            out["z"] = z
            return out
        return fn

    def _variants(self, *modalities):
        """("", float32), plus ("_uint8", uint8) when one of ``modalities`` is an image modality."""
        return (("", tf.float32),) + ((("_uint8", tf.uint8),) if any(self.is_image[m] for m in modalities) else ())

    def all(self) -> list[tuple[str, object, list]]:
        """(signature name, function, input signature) for every signature, ``serving_default`` first."""
        out = []
        pairs = [(a, b) for a in self.names for b in self.names if a != b]
        first = pairs[0]
        out.append(("serving_default", self.translate(*first), [self.image_spec(first[0], tf.float32)]))
        for m in self.names:
            for suffix, dtype in self._variants(m):
                out.append((f"encode_{m}{suffix}", self.encode(m), [self.image_spec(m, dtype)]))
            out.append((f"decode_{m}", self.decode(m),
                        [self.code_spec("content", self.content_dim), self.code_spec("style", self.style_dim)]))
        for a, b in pairs:
            for suffix, dtype in self._variants(a):
                out.append((f"translate_{a}_to_{b}{suffix}", self.translate(a, b), [self.image_spec(a, dtype)]))
                if self.style_dim > 0:
                    out.append((f"translate_{a}_to_{b}_with_style{suffix}", self.translate_with_style(a, b),
                                [self.image_spec(a, dtype), self.code_spec("style", self.style_dim)]))
        for suffix, dtype in self._variants(*self.names):
            out.append((f"reconstruct_joint{suffix}", self.reconstruct_joint(), [self.reconstruct_joint_specs(dtype)]))
        out.append(("sample_joint", self.sample_joint(),
                    [scalar_spec(tf.int32, "num_samples"), scalar_spec(tf.int64, "seed")]))
        return out


def serving_default_name(names) -> str:
    """The signature that ``serving_default`` aliases: translation from the first to the second modality."""
    return f"translate_{names[0]}_to_{names[1]}"


def _spec_json(spec: tf.TensorSpec) -> dict:
    """dtype and shape (-1: any size); a scalar checked in the graph (:func:`scalar_spec`) is described as the
    scalar it must be, with ``"checked_in_graph": true``."""
    if spec.shape.rank is None:
        return {"dtype": spec.dtype.name, "shape": [], "checked_in_graph": True}
    return {"dtype": spec.dtype.name, "shape": [-1 if d is None else int(d) for d in spec.shape]}


def _describe(concrete) -> dict:
    """Inputs and outputs of a concrete function as {"inputs": {key: {dtype, shape}}, "outputs": {...}}."""
    inputs = {}
    for spec in tf.nest.flatten(concrete.structured_input_signature):
        inputs[spec.name] = _spec_json(spec)
    outputs = {k: _spec_json(v) for k, v in sorted(concrete.structured_outputs.items())}
    return {"inputs": dict(sorted(inputs.items())), "outputs": outputs}


def _check_names(names) -> None:
    for n in names:
        if not _NAME_RE.match(n):
            raise MMALIError(f"cannot export modality {n!r}: signature names need [A-Za-z][A-Za-z0-9_]* names")
        if n in RESERVED_OUTPUT_KEYS:
            raise MMALIError(f"cannot export modality {n!r}: the name is used for another output "
                             f"({', '.join(RESERVED_OUTPUT_KEYS)})")


# ---------------------------------------------------------------------------------------------- metadata
def read_fingerprints(workdir: str) -> dict:
    """``<workdir>/data_fingerprints.json`` if the trainer wrote it, else a note that fingerprints are unavailable."""
    path = os.path.join(workdir, FINGERPRINTS_FILE)
    if not os.path.exists(path):
        return {"available": False, "note": f"{FINGERPRINTS_FILE} not found in the run directory"}
    try:
        with open(path) as f:
            return {"available": True, "source": path, "fingerprints": json.load(f)}
    except (OSError, json.JSONDecodeError) as exc:
        return {"available": False, "note": f"{path} is unreadable: {exc}"}


def build_metadata(model, step: int, signatures: dict, extra: dict | None = None) -> dict:
    config = model.config
    cfg = config.model
    modalities = []
    for spec in cfg.modalities:
        example = kinds.input_spec(spec)
        entry = {"name": spec.name, "kind": spec.kind, "dataset": spec.dataset, "quarter_turns": spec.quarter_turns,
                 "input_shape": list(example.shape)}
        if example.examples == kinds.PIXELS:
            entry.update({"image_shape": list(example.shape), "input_name": "images",
                          "inputs": {"float32": "values in [0, 1]",
                                     "uint8": "values in 0..255 (signatures ending in _uint8)"},
                          "outputs": "float32 in [0, 1]"})
        else:
            entry.update({"feature_dim": int(example.shape[0]), "input_name": "features",
                          "inputs": {"float32": "feature values as in the training data (finite)"},
                          "outputs": "float32 features (linear decoder)"})
        modalities.append(entry)
    metadata = {
        "format": "mmali_tf SavedModel export",
        "format_version": 1,
        "name": config.name,
        "modalities": modalities,
        "latent": {"latent_dim": cfg.latent_dim, "style_dim": cfg.style_dim, "content_dim": cfg.content_dim,
                   "layout": "z = [style | content]; codes are posterior means"},
        "step": int(step),
        "weights": "EMA encoders and decoders",
        "config": config.to_dict(),
        "serving_default": serving_default_name(cfg.names),
        "sample_joint": {"max_samples": MAX_SAMPLES,
                         "z": "tf.random.stateless_normal([num_samples, latent_dim], seed=[seed, 0])"},
        "signatures": signatures,
        "versions": {"mmali_tf": mmali_tf.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                     "python": platform.python_version()},
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    metadata.update(extra or {})
    metadata.setdefault("checkpoint", None)
    metadata.setdefault("data_fingerprints", {"available": False, "note": "not recorded by the caller"})
    return metadata


# ---------------------------------------------------------------------------------------------- writing
def directory_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


def check_target(export_dir: str, overwrite: bool) -> None:
    """Refuse a target that cannot be written, or that exists without ``overwrite``; creates nothing."""
    if os.path.lexists(export_dir) and not os.path.isdir(export_dir):
        raise MMALIError(f"export dir {export_dir} exists and is not a directory")
    if os.path.exists(export_dir) and not overwrite:
        raise MMALIError(f"export dir {export_dir} already exists; pass --overwrite to replace it "
                         "(or export a new version number)")
    problem = output_dir_problem(os.path.dirname(os.path.abspath(export_dir)))
    if problem:
        raise MMALIError(f"cannot export to {export_dir}: {problem}")


def _hidden(export_dir: str, kind: str) -> str:
    """``.<name>.<kind>-`` beside ``export_dir``: the prefix of the temporary (``tmp``) and moved-aside (``old``)
    folders, hidden so that TensorFlow Serving never loads them as a version."""
    parent, base = os.path.split(os.path.abspath(export_dir))
    return os.path.join(parent, f".{base}.{kind}-")


def clean_interrupted(export_dir: str) -> list[str]:
    """Undo what an interrupted export left beside ``export_dir``; returns one line per thing done.

    Its temporary folders (``.<name>.tmp-*``) are removed. A previous version moved aside for ``--overwrite``
    (``.<name>.old-*``) is put back if ``export_dir`` is missing (the interruption fell between the two renames),
    and removed otherwise.
    """
    done = []
    for kind in ("tmp", "old"):
        for path in sorted(glob.glob(glob.escape(_hidden(export_dir, kind)) + "*")):
            if kind == "old" and not os.path.exists(export_dir):
                os.rename(path, export_dir)
                done.append(f"put back {export_dir}, moved aside by an interrupted export ({os.path.basename(path)})")
            else:
                shutil.rmtree(path, ignore_errors=True)
                done.append(f"removed {os.path.basename(path)}, left beside {export_dir} by an interrupted export")
    return done


def _swap_into_place(tmp: str, export_dir: str) -> None:
    """Rename ``tmp`` to ``export_dir``; an existing ``export_dir`` is moved aside first and deleted after."""
    if not os.path.exists(export_dir):
        os.rename(tmp, export_dir)
        return
    old = _hidden(export_dir, "old") + uuid.uuid4().hex[:8]
    os.rename(export_dir, old)
    try:
        os.rename(tmp, export_dir)
    except OSError:
        os.rename(old, export_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


def export_model(model, export_dir: str, step: int, metadata: dict | None = None, overwrite: bool = False) -> dict:
    """Write the EMA networks of ``model`` (an :class:`mmali_tf.model.MMALI`) as a SavedModel to ``export_dir``.

    ``metadata`` entries (e.g. ``checkpoint``, ``workdir``, ``data_fingerprints``) are added to the generated
    metadata file. Returns ``{"export_dir", "signatures" (sorted names), "serving_default", "size_mb",
    "metadata_path", "metadata", "seconds"}``.
    """
    started = time.perf_counter()
    names = list(model.config.model.names)
    _check_names(names)
    export_dir = os.path.abspath(export_dir)
    check_target(export_dir, overwrite)
    tmp = _hidden(export_dir, "tmp") + uuid.uuid4().hex[:8]
    try:
        os.makedirs(os.path.dirname(export_dir), exist_ok=True)
        os.mkdir(tmp)
        endpoints = _Endpoints(model)
        # No archive.track(): it would save every variable twice (the Keras wrappers and the tf.Variables the
        # endpoints capture); the endpoints' variables are tracked automatically.
        archive = keras.export.ExportArchive()
        described = {}
        for name, fn, signature in endpoints.all():
            function = archive.add_endpoint(name, fn, input_signature=signature)
            described[name] = _describe(function.get_concrete_function())
        described["serving_default"]["alias_of"] = serving_default_name(names)
        archive.write_out(tmp, verbose=False)
        meta = build_metadata(model, step, dict(sorted(described.items())), metadata)
        meta_path = os.path.join(tmp, METADATA_PATH)
        os.makedirs(os.path.dirname(meta_path), exist_ok=True)
        with open(meta_path, "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        check_target(export_dir, overwrite)  # something may have appeared while we were writing
        _swap_into_place(tmp, export_dir)
    except (OSError, tf.errors.OpError) as exc:  # e.g. a full disk
        shutil.rmtree(tmp, ignore_errors=True)
        raise MMALIError(f"could not write the export {export_dir}: {os_reason(exc)} (nothing was left behind"
                         + (f"; {export_dir} is unchanged)" if os.path.exists(export_dir) else ")")) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"export_dir": export_dir, "signatures": sorted(described), "serving_default": serving_default_name(names),
            "size_mb": directory_size(export_dir) / 1e6, "metadata_path": os.path.join(export_dir, METADATA_PATH),
            "metadata": meta, "seconds": time.perf_counter() - started}


def format_signature(name: str, description: dict) -> str:
    def fmt(specs):
        return ", ".join(f"{k}: {v['dtype']}[{','.join('B' if d == -1 else str(d) for d in v['shape'])}]"
                         if v["shape"] else f"{k}: {v['dtype']}" for k, v in specs.items())

    return f"{name}({fmt(description['inputs'])}) -> {', '.join(description['outputs'])}"


# ---------------------------------------------------------------------------------------------- command line
def define_flags() -> None:
    """The command-line flags; defined on demand (importing the module defines nothing)."""
    flags.DEFINE_string("workdir", None, "Run directory written by mmali_tf.train (config.json, checkpoints/).",
                        required=True)
    flags.DEFINE_string("export_dir", None, "Target SavedModel directory, TF Serving layout <name>/<version>, "
                        "e.g. exports/mmali/1.", required=True)
    flags.DEFINE_string("checkpoint", None, "Checkpoint prefix to export (default: the latest in --workdir).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --export_dir.")


def main(argv) -> None:
    del argv
    F = flags.FLAGS
    logging.set_verbosity(logging.ERROR)
    if not os.path.isdir(F.workdir):
        raise MMALIError(f"no run directory {F.workdir}")
    check_target(os.path.abspath(F.export_dir), F.overwrite)  # fail before the slow part
    for line in clean_interrupted(F.export_dir):
        print(line, flush=True)
    config = checks.check_registered(ExperimentConfig.from_json_file(os.path.join(F.workdir, "config.json")))
    model = MMALI(config)
    path, step = checkpointing.restore_ema_only(model, F.workdir, F.checkpoint)
    extra = {"checkpoint": os.path.abspath(path), "workdir": os.path.abspath(F.workdir),
             "data_fingerprints": read_fingerprints(F.workdir)}
    result = export_model(model, F.export_dir, step, extra, overwrite=F.overwrite)
    signatures = result["metadata"]["signatures"]
    print(f"exported step {step} from {path}", flush=True)
    print(f"to {result['export_dir']}: {result['size_mb']:.1f} MB, {len(signatures)} signatures "
          f"({result['seconds']:.0f} s)", flush=True)
    for name in result["signatures"]:
        suffix = f"  (= {result['serving_default']})" if name == "serving_default" else ""
        print(f"  {format_signature(name, signatures[name])}{suffix}", flush=True)
    print(f"metadata: {result['metadata_path']}", flush=True)
    if not os.path.basename(result["export_dir"]).isdigit():
        print("note: TensorFlow Serving loads <model_base_path>/<integer version>/; name the export dir "
              "e.g. exports/mmali/1", flush=True)


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
