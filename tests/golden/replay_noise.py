"""Recorded noise served by stream name: the authors' golden draws replayed through our objective."""

from __future__ import annotations

import tensorflow as tf


class ReplayNoise:
    """Recorded draws served by stream name, in place of :class:`StepNoise` (e.g. the authors' golden draws).

    ``draws`` maps a stream name to the array to return; a stream that is not recorded, or a shape that differs
    from the request, raises. ``used`` lists the streams served so far.
    """

    def __init__(self, draws):
        self._draws = {name: tf.constant(value) for name, value in draws.items()}
        self.used: list[str] = []

    @property
    def recorded(self) -> list[str]:
        return list(self._draws)

    def _take(self, stream: str, shape) -> tf.Tensor:
        if stream not in self._draws:
            raise KeyError(f"no recorded draw for noise stream {stream!r}")
        value = self._draws[stream]
        expected = [int(d) for d in tf.get_static_value(tf.convert_to_tensor(shape))]
        if list(value.shape) != expected:
            raise ValueError(f"recorded draw {stream!r} has shape {list(value.shape)}, requested {expected}")
        self.used.append(stream)
        return value

    def normal(self, stream: str, shape) -> tf.Tensor:
        return self._take(stream, shape)

    def permutation(self, stream: str, size) -> tf.Tensor:
        return tf.cast(self._take(stream, tf.reshape(size, [1])), tf.int32)
