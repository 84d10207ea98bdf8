"""Which network sees which tuple: recording ("spy") networks, whose inputs say where they came from.

Every pixel of a real image encodes (call, modality, row); encoders write (their modality, the image's code) into
every style and content coordinate, with a negligible variance; decoders write their modality and the z they were
given into the image. The spy critics record every call, and the tests read the records back as tuples of
("real", call, modality, row), ("decoded", modality, z), ("encoded", modality, image) or ("prior",), and check them
against docs/objective.md, "Which network sees which tuple", call by call and in order.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import tensorflow as tf

from mmali_tf.config import LossConfig, ModalitySpec, ModelConfig
from mmali_tf.noise import StepNoise
from mmali_tf.objective import Networks, discriminator_losses, generator_losses

B, S, C = 6, 2, 3
L = S + C
SHAPE = (3, 3, 1)  # 9 pixels: room for a decoder's marker and z
CALLS = ("d_unimodal", "d_joint", "g_unimodal", "g_joint")
NAMES = ("a", "b", "c")
ENCODED_STYLE, ENCODED_CONTENT = 1000.0, 100000.0  # per encoder index i: (i + 1) * offset + image code


def image_code(call: str, modality: int, row: int) -> float:
    return 100.0 * CALLS.index(call) + 10.0 * modality + row + 0.5


def spy_batches(names):
    return {call: {n: tf.constant(np.stack([np.full(SHAPE, image_code(call, i, r), np.float32) for r in range(B)]))
                   for i, n in enumerate(names)} for call in CALLS}


class SpyCritic:
    """Records every tuple it is asked to score (inputs and name) and returns zero logits."""

    def __init__(self, log, names, outputs):
        self.log, self.names, self.outputs = log, names, outputs

    def score(self, tuples):
        out = {}
        for name, inputs in tuples.items():
            self.log.append([t.numpy() for t in inputs])
            self.names.append(name)
            out[name] = tf.zeros([tf.shape(inputs[0])[0], self.outputs])
        return out


class Spies:
    """Spy encoders, decoders and critics for ``names``; ``log[critic]`` lists the inputs of every call."""

    def __init__(self, names, baseline=False):
        self.names = names
        self.log = defaultdict(list)  # per critic: the inputs of every tuple it scored, in order
        self.names_log = defaultdict(list)  # per critic: the names of those tuples
        encoders = {n: self._encoder(i) for i, n in enumerate(names)}
        decoders = {n: self._decoder(i) for i, n in enumerate(names)}
        if baseline:
            self.networks = Networks(encoders, decoders, d_baseline=self._critic("baseline", len(names) + 1))
        else:
            self.networks = Networks(encoders, decoders, {n: self._critic(f"d0/{n}", len(names) + 1) for n in names},
                                     {n: self._critic(f"d1/{n}", 1) for n in names}, self._critic("dj", 1))

    @staticmethod
    def _encoder(i):
        def encode(x, training=None):
            code = tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1, keepdims=True)
            mean = tf.concat([tf.tile((i + 1) * ENCODED_STYLE + code, [1, S]),
                              tf.tile((i + 1) * ENCODED_CONTENT + code, [1, C])], axis=1)
            return tf.concat([mean, tf.fill(tf.shape(mean), -200.0)], axis=1)  # logvar: no visible noise

        return encode

    @staticmethod
    def _decoder(i):
        def decode(z, training=None):
            marker = tf.fill([tf.shape(z)[0], 1], -(i + 1.0))
            pixels = tf.concat([marker, z, tf.zeros([tf.shape(z)[0], 9 - 1 - L])], axis=1)
            return tf.reshape(pixels, (-1,) + SHAPE)

        return decode

    def _critic(self, name, outputs):
        return SpyCritic(self.log[name], self.names_log[name], outputs)

    # -------------------------------------------------------------- reading records back
    def image(self, x):
        """Per row: ("real", call, modality name, row) or ("decoded", modality name, z)."""
        rows = []
        for pixels in x.reshape(x.shape[0], -1):
            if pixels[0] < 0:
                rows.append(("decoded", self.names[int(round(-pixels[0])) - 1], tuple(pixels[1:1 + L])))
            else:
                code = pixels[0] - 0.5
                rows.append(("real", CALLS[int(code // 100)], self.names[int(code % 100 // 10)], int(code % 10)))
        return rows

    def part(self, values, offset):
        """Per row, one latent part: ("encoded", modality name, image row) or ("prior",)."""
        out = []
        for value in values:
            assert np.all(value == value[0]) or abs(value[0]) < offset / 2, value
            if abs(value[0]) < offset / 2:
                out.append(("prior",))
                continue
            i = int(value[0] // offset) - 1
            code = value[0] - (i + 1) * offset - 0.5
            out.append(("encoded", self.names[i], (CALLS[int(round(code) // 100)],
                                                   self.names[int(round(code) % 100 // 10)], int(round(code) % 10))))
        return out

    def style(self, z):
        return self.part(z[:, :S], ENCODED_STYLE)

    def content(self, z):
        return self.part(z[:, S:], ENCODED_CONTENT)


def config(names, discriminator="factorized"):
    return ModelConfig(modalities=tuple(ModalitySpec(n, "mnist", "mnist") for n in names), latent_dim=L, style_dim=S,
                       discriminator=discriminator, joint_architecture="concat")


def run(step, names=NAMES, baseline=False, loss=LossConfig(lambda_unimodal=0.1)):
    spies = Spies(names, baseline)
    fn = discriminator_losses if step == "D" else generator_losses
    fn(spies.networks, spy_batches(names), StepNoise(0, 7), config(names, "joint" if baseline else "factorized"), loss)
    return spies


def real(call, m):
    return [("real", call, m, r) for r in range(B)]


def encoded_by(m, call, source=None):
    """Rows of "encoded by m's encoder from the real ``call`` batch of ``source`` (default m)", in order."""
    return [("encoded", m, (call, source or m, r)) for r in range(B)]


def is_permutation_of(rows, reference):
    return sorted(rows) == sorted(reference) and rows != reference


def decoded_with_own_code(spies, x, z):
    """Every decoded image was made from exactly the code it is shown with."""
    return all(kind == "decoded" and np.allclose(code, z_row) for (kind, _, code), z_row in zip(spies.image(x), z))


# ---------------------------------------------------------------------------------------------- discriminator step
@pytest.mark.parametrize("m", NAMES)
def test_d0_in_the_discriminator_step(m):
    spies = run("D")
    calls = spies.log[f"d0/{m}"]
    assert len(calls) == 2 + len(NAMES) - 1
    (x, z), (x_p, z_p) = calls[0], calls[1]
    # class 0: the unimodal batch with its own encoding
    assert spies.image(x) == real("d_unimodal", m)
    assert spies.style(z) == spies.content(z) == encoded_by(m, "d_unimodal")
    # class 1: a decoded image with the prior code it was decoded from
    assert spies.style(z_p) == spies.content(z_p) == [("prior",)] * B
    assert decoded_with_own_code(spies, x_p, z_p) and {r[1] for r in spies.image(x_p)} == {m}
    # classes 2..: the joint batch, own style, content encoded from the other modalities of the same tuples
    others = [k for k in NAMES if k != m]
    for (x_c, z_c), k in zip(calls[2:], others):
        assert spies.image(x_c) == real("d_joint", m)
        assert spies.style(z_c) == encoded_by(m, "d_joint")
        assert spies.content(z_c) == encoded_by(k, "d_joint")


@pytest.mark.parametrize("m", NAMES)
def test_d1_in_the_discriminator_step(m):
    spies = run("D")
    (x, z), (x_neg, z_neg) = spies.log[f"d1/{m}"]
    assert spies.image(x) == real("d_unimodal", m)
    assert spies.style(z) == spies.content(z) == encoded_by(m, "d_unimodal")
    # negative: each real image with its own style, and the content of a prior draw of another row
    assert spies.image(x_neg) == real("d_unimodal", m)
    assert spies.style(z_neg) == encoded_by(m, "d_unimodal")
    assert spies.content(z_neg) == [("prior",)] * B
    prior = spies.log[f"d0/{m}"][1][1]  # the decoder tuple's prior z, drawn in the same call
    assert not np.array_equal(z_neg[:, S:], prior[:, S:])
    # ... which gives exactly the tuples of the authors' negative, row i = (x[p1[i]], s[p1[i]], prior c[p2[i]])
    noise = StepNoise(0, 7)
    p1 = noise.permutation(f"d_unimodal/{m}/shuffle", B).numpy()
    p2 = noise.permutation(f"d_unimodal/{m}/prior_shuffle", B).numpy()
    theirs = {(tuple(x[i].ravel()), tuple(z[i, :S]), tuple(prior[j, S:])) for i, j in zip(p1, p2)}
    ours = {(tuple(x_neg[i].ravel()), tuple(z_neg[i, :S]), tuple(z_neg[i, S:])) for i in range(B)}
    assert ours == theirs and len(ours) == B


def test_joint_critic_in_the_discriminator_step():
    spies = run("D")
    (positive, negative), = [spies.log["dj"]]
    assert [spies.image(x) for x in positive] == [real("d_joint", m) for m in NAMES]
    shuffled = [spies.image(x) for x in negative]
    assert all(is_permutation_of(rows, real("d_joint", m)) for rows, m in zip(shuffled, NAMES))
    # product of marginals: each modality shuffled on its own
    orders = [[r[3] for r in rows] for rows in shuffled]
    assert len({tuple(o) for o in orders}) == len(NAMES)


# ---------------------------------------------------------------------------------------------- generator step
def _joint_batch_tuples(spies, m):
    """The G step's calls of D0_m: 2 unimodal, M "encoder k" tuples, the decoder tuple, M - 1 cross contents."""
    calls = spies.log[f"d0/{m}"]
    assert len(calls) == 2 + len(NAMES) + 1 + len(NAMES) - 1
    return calls


@pytest.mark.parametrize("m", NAMES)
def test_d0_and_d1_in_the_generator_step(m):
    spies = run("G")
    calls = _joint_batch_tuples(spies, m)
    (x, z), (x_p, z_p) = calls[:2]
    assert spies.image(x) == real("g_unimodal", m)
    assert spies.style(z) == spies.content(z) == encoded_by(m, "g_unimodal")
    assert decoded_with_own_code(spies, x_p, z_p) and spies.content(z_p) == [("prior",)] * B
    d_step = run("D")
    assert not np.array_equal(z_p, d_step.log[f"d0/{m}"][1][1])  # a fresh prior, not the D step's
    q_tuples = calls[2:2 + len(NAMES)]
    for (x_k, z_k), k in zip(q_tuples, NAMES):  # "encoder k": own style, modality k's content, same tuples
        assert spies.image(x_k) == real("g_joint", m)
        assert spies.style(z_k) == encoded_by(m, "g_joint")
        assert spies.content(z_k) == encoded_by(k, "g_joint")
    x_dec, z_dec = calls[2 + len(NAMES)]
    assert decoded_with_own_code(spies, x_dec, z_dec)
    assert spies.style(z_dec) == spies.content(z_dec) == [("prior",)] * B
    for (x_c, z_c), k in zip(calls[3 + len(NAMES):], [k for k in NAMES if k != m]):
        np.testing.assert_array_equal(z_c, q_tuples[NAMES.index(k)][1])
        assert spies.image(x_c) == real("g_joint", m)
    # D1_m scores the same M + 1 tuples of the joint batch
    d1 = spies.log[f"d1/{m}"]
    assert len(d1) == len(NAMES) + 1
    for (x1, z1), (x0, z0) in zip(d1, calls[2:3 + len(NAMES)]):
        np.testing.assert_array_equal(x1, x0)
        np.testing.assert_array_equal(z1, z0)


def test_decoder_tuple_shares_the_prior_content_not_the_styles():
    spies = run("G")
    decoded = [_joint_batch_tuples(spies, m)[2 + len(NAMES)][1] for m in NAMES]
    for z in decoded[1:]:
        np.testing.assert_array_equal(z[:, S:], decoded[0][:, S:])
        assert not np.array_equal(z[:, :S], decoded[0][:, :S])


def test_joint_critic_in_the_generator_step():
    spies = run("G")
    real_tuple, decoded_tuple = spies.log["dj"]
    assert [spies.image(x) for x in real_tuple] == [real("g_joint", m) for m in NAMES]
    for x, m in zip(decoded_tuple, NAMES):
        x0, z0 = _joint_batch_tuples(spies, m)[2 + len(NAMES)]
        np.testing.assert_array_equal(x, x0)


# ---------------------------------------------------------------------------------------------- baseline
@pytest.mark.parametrize("step", ["D", "G"])
def test_baseline_critic_tuples(step):
    spies = run(step, baseline=True)
    calls = spies.log["baseline"]
    num = len(NAMES)
    assert len(calls) == 2 * (num + 1)
    for first, batch in ((0, f"{step.lower()}_unimodal"), (num + 1, f"{step.lower()}_joint")):
        for k in range(num):
            *xs, z = calls[first + k]
            assert [spies.image(x) for x in xs] == [real(batch, m) for m in NAMES]
            for i, m in enumerate(NAMES):
                assert spies.part(z[:, i * S:(i + 1) * S], ENCODED_STYLE) == encoded_by(m, batch)
            assert spies.part(z[:, num * S:], ENCODED_CONTENT) == encoded_by(NAMES[k], batch)
        *xs, z = calls[first + num]
        for i, x in enumerate(xs):
            own = np.concatenate([z[:, i * S:(i + 1) * S], z[:, num * S:]], axis=1)
            assert decoded_with_own_code(spies, x, own)
        assert spies.part(z, ENCODED_CONTENT) == [("prior",)] * B


# ---------------------------------------------------------------------------------------------- gradients
def test_discriminator_step_passes_no_gradient_to_the_generators():
    """In the D step encodings and decoded images are constants; in the G step both carry gradient."""
    names = ("a", "b")
    scale = tf.Variable(1.0)

    def encoder(x, training=None):
        flat = tf.reshape(x, [tf.shape(x)[0], -1])[:, :L]
        return tf.concat([scale * flat, tf.zeros_like(flat)], axis=1)

    def decoder(z, training=None):
        return tf.reshape(tf.tile(scale * z, [1, 2])[:, :9], (-1,) + SHAPE)

    class SumCritic:
        def __init__(self, outputs):
            self.outputs = outputs

        def score(self, tuples):
            return {name: tf.reduce_sum(tf.concat([tf.reshape(t, [tf.shape(t)[0], -1]) for t in inputs], 1),
                                        axis=1, keepdims=True) * tf.ones([1, self.outputs])
                    for name, inputs in tuples.items()}

    def critic(outputs):
        return SumCritic(outputs)

    nets = Networks({n: encoder for n in names}, {n: decoder for n in names}, {n: critic(3) for n in names},
                    {n: critic(1) for n in names}, critic(1))
    for fn, expect_gradient in ((discriminator_losses, False), (generator_losses, True)):
        with tf.GradientTape() as tape:
            terms = fn(nets, spy_batches(names), StepNoise(0, 0), config(names), LossConfig(lambda_unimodal=0.1))
            loss = tf.add_n(list(terms.values()))
        grad = tape.gradient(loss, scale)
        assert (grad is not None) == expect_gradient, fn.__name__
