"""Stateless randomness keyed on (seed, step, stream, replica).

Keras ``SeedGenerator`` state is not checkpointed (docs/platform.md, section 1), so every random draw in a training
step is a pure function of the run seed, the step counter, a named stream and the replica id. A resumed run
therefore draws exactly the noise the uninterrupted run would have drawn, and XLA can compile it.
"""

from __future__ import annotations

import zlib

import tensorflow as tf


def _stream_id(stream: str) -> int:
    return zlib.crc32(stream.encode()) & 0x7FFFFFFF


class StepNoise:
    """Named noise streams for one training (or evaluation) step.

    Under ``num_replicas`` replicas each replica holds rows ``[replica * b, (replica + 1) * b)`` of the global batch
    (b rows each): ``normal`` draws the global tensor and returns this replica's rows, ``permutation`` returns a
    permutation of the whole global batch. The draws of a step are then the same whatever the number of replicas
    (with :func:`mmali_tf.objective.shuffled` applying global permutations).
    """

    def __init__(self, seed: int, step, replica=0, num_replicas: int = 1):
        self._seed = int(seed)
        self._step = tf.cast(step, tf.int64)
        self._replica = tf.cast(replica, tf.int32)
        self._num_replicas = int(num_replicas)

    def seed_for(self, stream: str) -> tf.Tensor:
        first = tf.constant(_stream_id(stream) + (self._seed << 31), tf.int64)
        return tf.stack([first, self._step * 4096])

    def normal(self, stream: str, shape) -> tf.Tensor:
        if self._num_replicas == 1:
            return tf.random.stateless_normal(shape, seed=self.seed_for(stream))
        shape = tf.convert_to_tensor(shape)
        rows = shape[0]
        full = tf.random.stateless_normal(tf.concat([[rows * self._num_replicas], shape[1:]], 0),
                                          seed=self.seed_for(stream))
        return full[self._replica * rows:(self._replica + 1) * rows]

    def permutation(self, stream: str, size) -> tf.Tensor:
        """A uniformly random permutation of the global batch, ``range(size * num_replicas)``."""
        total = tf.reshape(tf.cast(size, tf.int32) * self._num_replicas, [1])
        keys = tf.random.stateless_uniform(total, seed=self.seed_for(stream))
        return tf.argsort(keys, stable=True)

