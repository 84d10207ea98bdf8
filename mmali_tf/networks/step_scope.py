"""One player step during which every discriminator is a fixed function.

MMALI calls each discriminator on several tuples per player step (docs/objective.md, "Which network sees which
tuple"). The authors' PyTorch code runs a spectral-norm power iteration before every one of these forwards, so the
discriminator changes slightly from call to call. Inside :func:`fixed_discriminators` each spectrally normalised
layer instead runs its power iteration once, on its first call in the scope, and reuses that normalised kernel for
the rest of the scope (one update per player step, as in Miyato et al. 2018). The discriminators are then fixed
functions for the whole step, which is what lets :class:`mmali_tf.networks.critic.Critic` reuse the features of an
image batch it has already seen, and whole calls it has already made.

The scope only lives while a step is traced or run: tensors cached in it belong to the graph being built, so enter
it inside the innermost ``tf.function`` (and inside the gradient tape: sigma must be differentiated).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

import tensorflow as tf

# Per thread: MirroredStrategy builds each replica's step in its own thread, and each needs its own caches.
_LOCAL = threading.local()


def _stack() -> list["StepScope"]:
    if not hasattr(_LOCAL, "scopes"):
        _LOCAL.scopes = []
    return _LOCAL.scopes


class StepScope:
    """The caches of one player step, keyed by object identity (each entry keeps its keys alive)."""

    def __init__(self):
        self._kernels: dict[int, tuple[object, tf.Tensor]] = {}
        self._values: dict[tuple, tuple[tuple, tf.Tensor]] = {}
        self._rows: dict[int, tuple[tf.Tensor, tf.Tensor, tf.Tensor]] = {}

    def kernel(self, layer, compute: Callable[[], tf.Tensor]) -> tf.Tensor:
        """``layer``'s normalised kernel for this step: ``compute()`` (with its power iteration) the first time."""
        if id(layer) not in self._kernels:
            self._kernels[id(layer)] = (layer, compute())
        return self._kernels[id(layer)][1]

    def value(self, owner, inputs: tuple, compute: Callable[[], tf.Tensor]) -> tf.Tensor:
        """``compute()`` once per ``owner`` and identical ``inputs`` (the same tensor objects) in this step."""
        key = (id(owner),) + tuple(id(x) for x in inputs)
        if key not in self._values:
            self._values[key] = ((owner,) + tuple(inputs), compute())
        return self._values[key][1]

    def note_rows(self, selected: tf.Tensor, source: tf.Tensor, index: tf.Tensor) -> None:
        self._rows[id(selected)] = (selected, source, index)

    def rows_of(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor] | None:
        """``(source, index)`` if ``x`` was made by :func:`rows` in this step as ``source[index]``, else None."""
        entry = self._rows.get(id(x))
        return None if entry is None else entry[1:]


def current() -> StepScope | None:
    """The innermost active scope, or None outside :func:`fixed_discriminators`."""
    scopes = _stack()
    return scopes[-1] if scopes else None


@contextlib.contextmanager
def fixed_discriminators() -> Iterator[StepScope]:
    """Within the block, discriminators are fixed functions: one power iteration per layer, shared results."""
    scope = StepScope()
    _stack().append(scope)
    try:
        yield scope
    finally:
        _stack().remove(scope)


def rows(x: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """``x[index]`` along the batch axis of the *global* batch, remembered as rows of ``x`` in the current scope.

    With several replicas, ``x`` holds this replica's rows and ``index`` is a permutation of the global batch
    (:class:`mmali_tf.noise.StepNoise`): the replicas' rows are gathered, permuted, and this replica's share
    returned, so a shuffle does the same with any number of replicas. (Those rows are then not remembered: their
    features cannot be taken from this replica's.)
    """
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        local = tf.shape(x)[0]
        start = tf.cast(context.replica_id_in_sync_group, tf.int32) * local
        return tf.gather(_all_rows(context, x, start), index[start:start + local])
    selected = tf.gather(x, index)
    scope = current()
    if scope is not None:
        scope.note_rows(selected, x, index)
    return selected


def _all_rows(context, x: tf.Tensor, start: tf.Tensor) -> tf.Tensor:
    """Every replica's rows of ``x`` in replica order: each pads its own into place, then all sum (an all-reduce
    works under every strategy; MultiWorkerMirroredStrategy's all_gather does not accept these graph tensors)."""
    local, total = tf.shape(x)[0], tf.shape(x)[0] * context.num_replicas_in_sync
    padding = tf.concat([[[start, total - start - local]], tf.zeros([tf.rank(x) - 1, 2], tf.int32)], axis=0)
    return context.all_reduce(tf.distribute.ReduceOp.SUM, tf.pad(x, padding))
