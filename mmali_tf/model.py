"""The MMALI Keras model: players as direct attributes, one optimizer and tape per player, EMA generators.

``train_step`` only orchestrates (as in the keras-io GAN guide): one discriminator update, then one generator
update on the just-updated discriminators, then the EMA update. The objective itself is in
:mod:`mmali_tf.objective`.

Sub-models are direct attributes (``enc_mnist``, ``d0_svhn``, ...) because ``tf.train.Checkpoint`` silently skips
layers held only in lists or dicts (platform notes section 6); the name-keyed dicts are properties.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from mmali_tf import losses
from mmali_tf.config import ExperimentConfig
from mmali_tf.networks import registry
from mmali_tf.noise import StepNoise
from mmali_tf.objective import Latent, Networks, discriminator_losses, generator_losses


class MMALI(keras.Model):
    def __init__(self, config: ExperimentConfig, **kwargs):
        super().__init__(name="mmali", **kwargs)
        self.config = config
        cfg = config.model
        self.names = cfg.names
        self.latent = Latent(cfg)
        latent_dim = cfg.latent_dim
        num = len(cfg.names)
        # Built in a fixed order so that a seed fixes every initial weight.
        for spec in cfg.modalities:
            n = spec.name
            setattr(self, f"enc_{n}", registry.build_encoder(spec.kind, latent_dim, name=f"enc_{n}"))
            setattr(self, f"dec_{n}", registry.build_decoder(spec.kind, latent_dim, name=f"dec_{n}"))
            if cfg.discriminator == "factorized":
                setattr(self, f"d0_{n}", registry.build_xz_discriminator(spec.kind, latent_dim, num + 1, name=f"d0_{n}"))
                setattr(self, f"d1_{n}", registry.build_xz_discriminator(spec.kind, latent_dim, 1, name=f"d1_{n}"))
        kinds = [spec.kind for spec in cfg.modalities]
        if cfg.discriminator == "factorized":
            self.d_joint = registry.build_joint_discriminator(kinds, cfg.joint_architecture, name="d_joint")
        else:
            self.d_joint_xz = registry.build_joint_xz_discriminator(
                kinds, num * cfg.style_dim + cfg.content_dim, name="d_joint_xz")
        for spec in cfg.modalities:
            n = spec.name
            ema_enc = registry.build_encoder(spec.kind, latent_dim, name=f"ema_enc_{n}")
            ema_dec = registry.build_decoder(spec.kind, latent_dim, name=f"ema_dec_{n}")
            ema_enc.set_weights(getattr(self, f"enc_{n}").get_weights())
            ema_dec.set_weights(getattr(self, f"dec_{n}").get_weights())
            ema_enc.trainable = False
            ema_dec.trainable = False
            setattr(self, f"ema_enc_{n}", ema_enc)
            setattr(self, f"ema_dec_{n}", ema_dec)
        # Views of the discriminators as x-parts + heads (same layers); a plain object, so not in checkpoints.
        self._critics = self._split_critics()

    # ------------------------------------------------------------------ name-keyed views of the direct attributes
    @property
    def encoders(self) -> dict[str, keras.Model]:
        return {n: getattr(self, f"enc_{n}") for n in self.names}

    @property
    def decoders(self) -> dict[str, keras.Model]:
        return {n: getattr(self, f"dec_{n}") for n in self.names}

    @property
    def ema_encoders(self) -> dict[str, keras.Model]:
        return {n: getattr(self, f"ema_enc_{n}") for n in self.names}

    @property
    def ema_decoders(self) -> dict[str, keras.Model]:
        return {n: getattr(self, f"ema_dec_{n}") for n in self.names}

    @property
    def discriminators(self) -> list[keras.Model]:
        if self.config.model.discriminator == "joint":
            return [self.d_joint_xz]
        return ([getattr(self, f"d0_{n}") for n in self.names] + [getattr(self, f"d1_{n}") for n in self.names]
                + [self.d_joint])

    @property
    def generators(self) -> list[keras.Model]:
        return list(self.encoders.values()) + list(self.decoders.values())

    @property
    def networks(self) -> Networks:
        """The players for the objective; discriminators as SplitCritic views (shared image features)."""
        if self.config.model.discriminator == "joint":
            return Networks(self.encoders, self.decoders, joint_xz=self._critics.joint_xz)
        return Networks(self.encoders, self.decoders, q_vs_p=self._critics.q_vs_p, content=self._critics.content,
                        joint=self._critics.joint)

    @property
    def plain_networks(self) -> Networks:
        """The same players with the discriminators as whole Keras models (the straightforward computation)."""
        if self.config.model.discriminator == "joint":
            return Networks(self.encoders, self.decoders, joint_xz=self.d_joint_xz)
        return Networks(self.encoders, self.decoders,
                        q_vs_p={n: getattr(self, f"d0_{n}") for n in self.names},
                        content={n: getattr(self, f"d1_{n}") for n in self.names},
                        joint=self.d_joint)

    def _split_critics(self) -> Networks:
        """SplitCritic views of the discriminators, kept in a plain (untracked) object: no new checkpoint entries."""
        kinds = {m.name: m.kind for m in self.config.model.modalities}
        plain = self.plain_networks
        if plain.joint_xz is not None:
            return Networks({}, {}, joint_xz=registry.split_joint_discriminator(plain.joint_xz))
        return Networks({}, {},
                        q_vs_p={n: registry.split_xz_discriminator(kinds[n], d) for n, d in plain.q_vs_p.items()},
                        content={n: registry.split_xz_discriminator(kinds[n], d) for n, d in plain.content.items()},
                        joint=registry.split_joint_discriminator(plain.joint))

    @property
    def d_variables(self):
        return [v for d in self.discriminators for v in d.trainable_variables]

    @property
    def g_variables(self):
        return [v for g in self.generators for v in g.trainable_variables]

    def _ema_pairs(self):
        live = [v for g in self.generators for v in g.weights]
        shadow = [v for n in self.names for v in self.ema_encoders[n].weights]
        shadow += [v for n in self.names for v in self.ema_decoders[n].weights]
        return list(zip(shadow, live))

    # ------------------------------------------------------------------ compile / build
    def compile(self, jit_compile: bool = True, steps_per_execution: int = 1, num_replicas: int = 1):
        """Two Adams (reference section 5); XLA over the whole step on one replica, per replica pass otherwise."""
        t = self.config.train
        self.d_optimizer = keras.optimizers.Adam(t.lr, beta_1=t.beta1, beta_2=t.beta2, epsilon=t.epsilon,
                                                 name="d_adam")
        self.g_optimizer = keras.optimizers.Adam(t.lr, beta_1=t.beta1, beta_2=t.beta2, epsilon=t.epsilon,
                                                 name="g_adam")
        self.d_optimizer.build(self.d_variables)
        self.g_optimizer.build(self.g_variables)
        # XLA + MirroredStrategy with >1 replica cannot compile the whole step (platform notes section 3).
        whole_step_xla = jit_compile and num_replicas == 1
        self._d_grads_fn = self._d_grads if not (jit_compile and not whole_step_xla) else tf.function(
            self._d_grads, jit_compile=True)
        self._g_grads_fn = self._g_grads if not (jit_compile and not whole_step_xla) else tf.function(
            self._g_grads, jit_compile=True)
        self._replica_scale = 1.0 / num_replicas
        super().compile(optimizer=None, jit_compile=whole_step_xla, steps_per_execution=steps_per_execution)
        self._build_trackers()

    def _build_trackers(self):
        d_names, g_names = self.loss_term_names()
        self.term_trackers = {f"D/{k}": keras.metrics.Mean(name=f"D/{k}") for k in d_names}
        self.term_trackers.update({f"G/{k}": keras.metrics.Mean(name=f"G/{k}") for k in g_names})
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.built = True

    def loss_term_names(self) -> tuple[list[str], list[str]]:
        """Names of the D and G terms, found by tracing the objective symbolically (no weights change)."""
        cfg = self.config.model
        shapes = {n: registry.IMAGE_SHAPES[s.kind] for n, s in zip(self.names, cfg.modalities)}
        spec = {call: {n: tf.TensorSpec((2,) + shapes[n], tf.float32) for n in self.names}
                for call in ("d_unimodal", "d_joint", "g_unimodal", "g_joint")}
        names = {}

        def trace(batches):
            noise = StepNoise(0, 0)
            # training=False so that tracing never updates spectral-norm vectors.
            nets = _inference_view(self.networks)
            names["d"] = list(discriminator_losses(nets, batches, noise, cfg, self.config.loss))
            names["g"] = list(generator_losses(nets, batches, noise, cfg, self.config.loss))
            return tf.constant(0.0)

        tf.function(trace).get_concrete_function(spec)
        return names["d"], names["g"]

    @property
    def metrics(self):
        trackers = getattr(self, "term_trackers", None)
        if trackers is None:
            return []
        return [self.d_loss_tracker, self.g_loss_tracker] + list(trackers.values())

    # ------------------------------------------------------------------ the training step
    def _d_grads(self, batches, step, replica):
        noise = StepNoise(self.config.train.seed, step, replica)
        with tf.GradientTape() as tape:
            terms = discriminator_losses(self.networks, batches, noise, self.config.model, self.config.loss)
            total = tf.add_n(list(terms.values()))
            scaled = total * self._replica_scale  # gradients are summed over replicas
        return terms, total, tape.gradient(scaled, self.d_variables)

    def _g_grads(self, batches, step, replica):
        noise = StepNoise(self.config.train.seed, step, replica)
        with tf.GradientTape() as tape:
            terms = generator_losses(self.networks, batches, noise, self.config.model, self.config.loss)
            total = tf.add_n(list(terms.values()))
            scaled = total * self._replica_scale
        return terms, total, tape.gradient(scaled, self.g_variables)

    def train_step(self, batches):
        step = self.d_optimizer.iterations  # the reference's n_iter, 0-based
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        # The counter is read where it is used: the G step and the EMA see it after the D update (step + 1). Read
        # values (not the variable) are passed on, as a tf.function argument cannot be a variable under a strategy.
        d_terms, d_loss, d_grads = self._d_grads_fn(batches, tf.convert_to_tensor(step), replica)
        self.d_optimizer.apply_gradients(zip(d_grads, self.d_variables))
        g_terms, g_loss, g_grads = self._g_grads_fn(batches, tf.convert_to_tensor(step), replica)
        self.g_optimizer.apply_gradients(zip(g_grads, self.g_variables))
        self.update_ema(step)

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        for prefix, terms in (("D", d_terms), ("G", g_terms)):
            for key, value in terms.items():
                self.term_trackers[f"{prefix}/{key}"].update_state(value)
        return {m.name: m.result() for m in self.metrics}

    def update_ema(self, step):
        """Copy while ``step <= ema_start``, then decay (reference section 5: strict ``n_iter > ema_start``)."""
        t = self.config.train
        decay = tf.where(step > t.ema_start, tf.constant(t.ema_decay, tf.float32), 0.0)
        for shadow, live in self._ema_pairs():
            shadow.assign(decay * shadow + (1.0 - decay) * live)

    def call(self, inputs, training=False):
        """Translate every modality through the EMA nets: ``{a: images}`` -> ``{a: {b: images}}``."""
        out = {}
        for a, x in inputs.items():
            mean, _ = losses.split_gaussian(self.ema_encoders[a](x, training=False))
            out[a] = {b: self.ema_decoders[b](mean, training=False) for b in self.names}
        return out


def _inference_view(nets: Networks) -> Networks:
    """The same networks, always called with ``training=False`` (used only for tracing)."""
    return dataclasses.replace(nets, training=False)


def count_parameters(models) -> int:
    return int(sum(np.prod(v.shape) for m in models for v in m.trainable_weights))
