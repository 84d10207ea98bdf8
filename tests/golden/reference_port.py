"""The correspondence between the authors' PyTorch code (6b5d/mmali) and ours, tensor by tensor and draw by draw.

Used to load their weights into our networks and to compare our training step with theirs (the golden fixtures,
``tests/test_golden.py``); ``docs/objective.md`` explains the comparison.

* **Modalities.** Theirs are dict keys processed in sorted order (``0mnist``, ``1svhn``); ours are the config's
  names in config order. ``their_keys[i]`` corresponds to ``cfg.names[i]``.
* **Networks.** ``encoders.<key>``, ``decoders.<key>``, ``xz_discriminators.<key>.0`` (our ``d0_<name>``),
  ``xz_discriminators.<key>.1`` (``d1_<name>``), ``joint_discriminator`` (``d_joint``) and, for their
  ``JointModel`` baseline, ``discriminators`` (``d_joint_xz``). Module paths map to our layer names through the
  table of each modality kind in :mod:`tests.golden.reference_names` and the per-architecture layout of the joint
  critics below.
* **Layouts.** Linear weights are ``[out, in]`` (our Dense kernels ``[in, out]``); conv weights OIHW and
  transposed-conv weights ``[in, out, kh, kw]`` (both ours = ``W.transpose(2, 3, 1, 0)``); spectral norm's
  ``weight_orig`` is our raw ``kernel``, ``weight_u`` our ``sn_u`` and ``weight_v`` our ``sn_v``, whose entries are
  ordered ``(in, kh, kw)`` in torch and ``(kh, kw, in)`` here.
* **Draws.** Each recorded draw has a role (call, purpose, modality); :func:`noise_streams` names the stream of
  our objective that plays that role.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from mmali_tf.errors import ConfigError
from mmali_tf.networks.spectral_norm import SNConv2D, SNDense
from tests.golden.reference_names import REFERENCE_NAMES, ReferenceNames

# Their module index in a joint critic's head / z-branch -> our layer-name suffix.
_HEAD_LAYERS = {0: "head_fc1", 2: "head_fc2", 4: "head_out"}
_Z_BRANCH_LAYERS = {0: "z_fc1", 2: "z_fc2"}
# Their module path of joint-critic branch j, per joint architecture: XXDiscriminatorDot and XXDiscriminatorFTFT
# name theirs x1_discrimination, x2_discrimination; MultiXDiscriminator x_discriminations.x<j>_discrimination.
_BRANCH_PATHS = {"dot": lambda j: f"x{j + 1}_discrimination", "feature_concat": lambda j: f"x{j + 1}_discrimination",
                 "concat": lambda j: f"x_discriminations.x{j}_discrimination"}


def reference_names(kind: str) -> ReferenceNames:
    """The authors' layer names of a kind (``ConfigError`` for kinds without an authors' counterpart)."""
    names = REFERENCE_NAMES.get(kind)
    if names is None:
        raise ConfigError(f"modality kind {kind!r} has no counterpart in the authors' code")
    return names


@dataclasses.dataclass(frozen=True)
class TensorPair:
    """One of their tensors (``key`` = ``<network>/<state_dict name>``) and the variable that holds it here."""

    key: str
    variable: keras.Variable
    layout: str  # "same", "dense", "conv" or "sn_v_conv": how the torch layout maps onto ours
    kernel_shape: tuple = ()  # for "sn_v_conv": the layer's kernel shape (kh, kw, in, out)

    def to_ours(self, value: np.ndarray) -> np.ndarray:
        value = np.asarray(value)
        if self.layout == "dense":
            return value.T
        if self.layout == "conv":
            return value.transpose(2, 3, 1, 0)
        if self.layout == "sn_v_conv":
            kh, kw, cin, _ = self.kernel_shape
            return value.reshape(cin, kh, kw).transpose(1, 2, 0).reshape(-1)
        return value

    def to_theirs(self, value: np.ndarray) -> np.ndarray:
        value = np.asarray(value)
        if self.layout == "dense":
            return value.T
        if self.layout == "conv":
            return value.transpose(3, 2, 0, 1)
        if self.layout == "sn_v_conv":
            kh, kw, cin, _ = self.kernel_shape
            return value.reshape(kh, kw, cin).transpose(2, 0, 1).reshape(-1)
        return value


def _layer_pairs(network: str, module: str, layer) -> list[TensorPair]:
    prefix = f"{network}/{module}"
    is_sn = isinstance(layer, (SNDense, SNConv2D))
    conv = len(layer.kernel.shape) == 4
    pairs = [TensorPair(f"{prefix}.{'weight_orig' if is_sn else 'weight'}", layer.kernel, "conv" if conv else "dense"),
             TensorPair(f"{prefix}.bias", layer.bias, "same")]
    if is_sn:
        pairs.append(TensorPair(f"{prefix}.weight_u", layer.sn_u, "same"))
        pairs.append(TensorPair(f"{prefix}.weight_v", layer.sn_v, "sn_v_conv" if conv else "same",
                                kernel_shape=tuple(layer.kernel.shape)))
    return pairs


def _pairs(network: str, model: keras.Model, modules: Mapping[str, str]) -> list[TensorPair]:
    """``modules``: their module path -> our layer-name suffix (the layer is ``f"{model.name}_{suffix}"``)."""
    out = []
    for module, suffix in modules.items():
        out += _layer_pairs(network, module, model.get_layer(f"{model.name}_{suffix}"))
    return out


def _joint_modules(kind_names: Sequence[str], architecture: str, with_z: bool) -> dict[str, str]:
    modules = {}
    for j, kind in enumerate(kind_names):
        branch = _BRANCH_PATHS[architecture](j)
        modules.update({f"{branch}.{i}": f"x{j}_{s}" for i, s in reference_names(kind).x_branch.items()})
        if architecture == "dot":
            modules[f"fc{j + 1}"] = f"fc{j + 1}"
    if with_z:
        modules.update({f"z_discrimination.{i}": s for i, s in _Z_BRANCH_LAYERS.items()})
    if architecture != "dot":
        modules.update({f"joint_discriminator.{i}": s for i, s in _HEAD_LAYERS.items()})
    return modules


def tensor_pairs(model, their_keys: Sequence[str], ema: bool = False) -> list[TensorPair]:
    """Every tensor of their model (or of its EMA generators, ``ema=True``) with the variable that holds it here.

    ``their_keys[i]`` is their modality key for ``model.names[i]``. The EMA pairs use their live keys (their
    fingerprints of the EMA model are keyed like the live one) and cover the generators only: we keep no EMA copy
    of the discriminators, which their code never runs.
    """
    cfg = model.config.model
    if len(their_keys) != len(cfg.names):
        raise ValueError(f"{len(their_keys)} reference modality keys for {len(cfg.names)} modalities")
    kind_names = [m.kind for m in cfg.modalities]
    pairs = []
    for key, name, kind in zip(their_keys, cfg.names, kind_names):
        encoder = getattr(model, f"{'ema_' if ema else ''}enc_{name}")
        decoder = getattr(model, f"{'ema_' if ema else ''}dec_{name}")
        names = reference_names(kind)
        pairs += _pairs(f"encoders.{key}", encoder, {f"module.model.{i}": s for i, s in names.encoder.items()})
        pairs += _pairs(f"decoders.{key}", decoder, {f"model.{i}": s for i, s in names.decoder.items()})
    if ema:
        return pairs
    if cfg.discriminator == "joint":
        return pairs + _pairs("discriminators", model.d_joint_xz, _joint_modules(kind_names, "concat", with_z=True))
    for key, name, kind in zip(their_keys, cfg.names, kind_names):
        pairs += _pairs(f"xz_discriminators.{key}.0", getattr(model, f"d0_{name}"), dict(reference_names(kind).xz))
        pairs += _pairs(f"xz_discriminators.{key}.1", getattr(model, f"d1_{name}"), dict(reference_names(kind).xz))
    return pairs + _pairs("joint_discriminator", model.d_joint,
                          _joint_modules(kind_names, cfg.joint_architecture, False))


def load_reference_weights(model, their_keys: Sequence[str], weights: Mapping[str, np.ndarray]) -> None:
    """Set every live and EMA variable from their tensors (``weights[<network>/<name>]``, torch layout).

    Every tensor of theirs must map to a variable here and vice versa; a missing key or a shape mismatch raises.
    """
    pairs = tensor_pairs(model, their_keys) + tensor_pairs(model, their_keys, ema=True)
    wanted = {p.key for p in pairs}
    extra = sorted(set(weights) - wanted)
    if extra:
        raise ValueError(f"reference tensors without a counterpart here: {extra[:5]}")
    for pair in pairs:
        if pair.key not in weights:
            raise ValueError(f"no reference tensor {pair.key}")
        value = pair.to_ours(weights[pair.key])
        if tuple(value.shape) != tuple(pair.variable.shape):
            raise ValueError(f"{pair.key}: reference shape {value.shape} vs ours {tuple(pair.variable.shape)}")
        pair.variable.assign(value.astype(np.float32))
    covered = {id(p.variable) for p in pairs}
    networks = model.generators + model.discriminators + list(model.ema_encoders.values()) + list(
        model.ema_decoders.values())
    missing = [v.path for net in networks for v in net.weights if id(v) not in covered]
    if missing:
        raise ValueError(f"variables with no reference tensor: {missing[:5]}")


def state_in_their_layout(model, their_keys: Sequence[str], ema: bool = False) -> dict[str, np.ndarray]:
    """Our current values of their tensors, keyed and laid out as theirs (for comparisons)."""
    return {p.key: p.to_theirs(p.variable.numpy()) for p in tensor_pairs(model, their_keys, ema=ema)}


# Their draw roles -> our noise stream names (objective.py). ``{m}`` is our modality name.
_FACTORIZED_STREAMS = {
    ("d_unimodal", "prior_z"): "d_unimodal/{m}/prior",
    ("d_unimodal", "encoder_noise"): "d_unimodal/{m}/posterior",
    ("d_unimodal", "perm_d1_xz"): "d_unimodal/{m}/shuffle",
    ("d_unimodal", "perm_d1_prior"): "d_unimodal/{m}/prior_shuffle",
    ("d_joint", "perm_extra_x"): "d_joint/{m}/marginal",
    ("d_joint", "encoder_noise"): "d_joint/{m}/posterior",
    ("g_unimodal", "prior_z"): "g_unimodal/{m}/prior",
    ("g_unimodal", "encoder_noise"): "g_unimodal/{m}/posterior",
    ("g_unimodal", "reencode_noise"): "g_unimodal/{m}/cycle",
    ("g_joint", "prior_style"): "g_joint/{m}/prior_style",
    ("g_joint", "prior_content"): "g_joint/prior_content",
    ("g_joint", "encoder_noise"): "g_joint/{m}/posterior",
    ("g_joint", "poe_noise_fake"): "g_joint/content_cycle",
    ("g_joint", "poe_noise_real"): "g_joint/joint_posterior",
}
# Their per-modality term suffixes -> ours (``{m}`` our modality name); D0's classes are handled in our_term_name.
_MODALITY_TERMS = {"1": "d1_{m}", "s_rec": "{m}/style_cycle", "c_rec": "{m}/content_cycle",
                   "x_rec": "{m}/reconstruction", "x_rec_joint": "{m}/joint_reconstruction"}


def our_term_name(manifest: Mapping, their_name: str, player: str, names: Sequence[str]) -> str:
    """Our name of one of their loss-dict keys (``mnist0_c2``, ``joint_q1``, ...) in ``player``'s ("D" or "G") step.

    Their baseline names its terms after the last modality key and keeps the second batch's; ours names them after
    the batch and the tuple (``d_joint/encoder_<m>``, ``g_joint/decoder``).
    """
    keys = manifest["config"]["modalities"]
    ours = dict(zip(keys, names))
    if manifest["config"]["model_type"] == "joint":
        label = int(their_name.rsplit("_c", 1)[1])
        tuple_name = f"encoder_{names[label]}" if label < len(names) else "decoder"
        return f"{player.lower()}_joint/{tuple_name}"
    fixed = {"joint": "dj", "joint_p": "joint/decoder", "joint_c_rec": "joint/content_cycle"}
    if their_name in fixed:
        return fixed[their_name]
    if their_name.startswith("joint_q"):
        return f"joint/encoder_{names[int(their_name[len('joint_q'):])]}"
    key = next(k for k in sorted(keys, key=len, reverse=True) if their_name.startswith(k + "_"))
    m, suffix = ours[key], their_name[len(key) + 1:]
    if suffix in _MODALITY_TERMS:
        return _MODALITY_TERMS[suffix].format(m=m)
    label = int(suffix[1:])  # "c<label>": a class of D0_m
    if label == 0:
        return f"d0_{m}/encoder"
    if label == 1:
        return f"d0_{m}/decoder"
    return f"d0_{m}/content_of_{[n for n in names if n != m][label - 2]}"


UNREAD_DRAWS = {"factor": {("d_joint", "prior_style"), ("d_joint", "prior_content")},
                "joint": {("d_joint", "perm_extra_x")}}
"""Per model type, the draws their loop makes that their objective never reads: the prior of the factorized
model's discriminator joint call, and the baseline's ``extra_x`` permutations."""


def is_unread(manifest: Mapping, draw: Mapping) -> bool:
    return (draw["call_id"], draw["purpose"]) in UNREAD_DRAWS[manifest["config"]["model_type"]]


def noise_streams(manifest: Mapping, draws: Mapping[str, np.ndarray], names: Sequence[str],
                  style_dim: int) -> dict[str, np.ndarray]:
    """Our stream name -> recorded value, for every recorded draw that our objective reads.

    ``manifest`` is the fixture's JSON (``draws.list``: index, npz key, call, purpose, modality key), ``draws`` its
    arrays, ``names`` our modality names in their sorted-key order. Their joint-discriminator baseline draws full
    prior codes z_m in its first call where ours draws styles and one shared content; ours takes the styles and the
    first modality's content from them (that call's decoded tuple therefore differs, docs/objective.md).
    """
    keys = manifest["config"]["modalities"]
    ours = dict(zip(keys, names))
    baseline = manifest["config"]["model_type"] == "joint"
    streams: dict[str, np.ndarray] = {}
    for draw in manifest["draws"]["list"]:
        if is_unread(manifest, draw):
            continue
        call, purpose, value = draw["call_id"], draw["purpose"], np.asarray(draws[draw["npz"]])
        name = ours.get(draw["modality"])
        if not baseline:
            streams[_FACTORIZED_STREAMS[(call, purpose)].format(m=name)] = value
        elif purpose in ("prior_style", "prior_content"):
            streams[f"{call}/{name}/prior_style" if name else f"{call}/prior_content"] = value
        elif purpose == "encoder_noise":
            streams[f"{call}/{name}/posterior"] = value
        elif purpose == "prior_z":  # first ("unimodal") call of the baseline
            streams[f"{call}/{name}/prior_style"] = value[:, :style_dim]
            if name == names[0]:
                streams[f"{call}/prior_content"] = value[:, style_dim:]
        else:
            raise ValueError(f"unexpected draw role {(call, purpose)} in a baseline fixture")
    return streams
