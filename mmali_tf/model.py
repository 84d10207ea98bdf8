"""The MMALI Keras model: players as direct attributes, one optimizer and tape per player, EMA generators.

``train_step`` only orchestrates (as in the keras-io GAN guide): one discriminator update, then one generator
update on the just-updated discriminators, then the EMA update. The objective itself is in
:mod:`mmali_tf.objective`.

Sub-models are direct attributes (``enc_mnist``, ``d0_svhn``, ...) because ``tf.train.Checkpoint`` silently skips
layers held only in lists or dicts (docs/platform.md, section 1); the name-keyed dicts are properties.
"""

from __future__ import annotations

import contextlib
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from mmali_tf import losses
from mmali_tf.config import ExperimentConfig
from mmali_tf.kinds import builders
from mmali_tf.noise import StepNoise
from mmali_tf.objective import (Latent, Networks, critic_scores, discriminator_losses, generator_losses,
                                total)
from mmali_tf.optimizers import TorchAdam


class MMALI(keras.Model):
    def __init__(self, config: ExperimentConfig, **kwargs):
        super().__init__(name="mmali", **kwargs)
        self.config = config
        cfg = config.model
        self.names = cfg.names
        self.latent = Latent(cfg)
        latent_dim = cfg.latent_dim
        # Built in a fixed order so that a seed fixes every initial weight. The live networks compute in the
        # configured precision; the EMA networks (evaluation, samples, export) in float32.
        with _dtype_policy("mixed_bfloat16" if config.train.precision == "bf16" else "float32"):
            self._build_players(cfg)
        for spec in cfg.modalities:
            n = spec.name
            ema_enc = builders.build_encoder(spec, latent_dim, name=f"ema_enc_{n}")
            ema_dec = builders.build_decoder(spec, latent_dim, name=f"ema_dec_{n}")
            ema_enc.set_weights(getattr(self, f"enc_{n}").get_weights())
            ema_dec.set_weights(getattr(self, f"dec_{n}").get_weights())
            ema_enc.trainable = False
            ema_dec.trainable = False
            setattr(self, f"ema_enc_{n}", ema_enc)
            setattr(self, f"ema_dec_{n}", ema_dec)
        # The critics through which the objective calls the discriminators; a plain object, so not in checkpoints.
        self._critics = self._make_critics()
        self._noise_source = lambda n_iter, replica, num_replicas: StepNoise(config.train.seed, n_iter, replica,
                                                                             num_replicas)

    def _build_players(self, cfg):
        latent_dim, num = cfg.latent_dim, len(cfg.names)
        for spec in cfg.modalities:
            n = spec.name
            setattr(self, f"enc_{n}", builders.build_encoder(spec, latent_dim, name=f"enc_{n}"))
            setattr(self, f"dec_{n}", builders.build_decoder(spec, latent_dim, name=f"dec_{n}"))
            if cfg.discriminator == "factorized":
                setattr(self, f"d0_{n}", builders.build_xz_discriminator(spec, latent_dim, num + 1, name=f"d0_{n}"))
                setattr(self, f"d1_{n}", builders.build_xz_discriminator(spec, latent_dim, 1, name=f"d1_{n}"))
        if cfg.discriminator == "factorized":
            self.d_joint = builders.build_joint_discriminator(cfg.modalities, cfg.joint_architecture, name="d_joint")
        else:
            self.d_joint_xz = builders.build_joint_xz_discriminator(
                cfg.modalities, num * cfg.style_dim + cfg.content_dim, name="d_joint_xz")

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
        """The players as the objective calls them; the discriminators as :class:`Critic` objects that score all
        tuples of a player step in one batched forward."""
        return self._critics

    @property
    def plain_networks(self) -> Networks:
        """The same players with critics that score one tuple per forward (the executable specification)."""
        return _map_critics(self._critics, lambda critic: critic.one_by_one())

    def _make_critics(self) -> Networks:
        specs = {m.name: m for m in self.config.model.modalities}
        if self.config.model.discriminator == "joint":
            nets = Networks(self.encoders, self.decoders, d_baseline=builders.joint_critic(self.d_joint_xz))
        else:
            nets = Networks(self.encoders, self.decoders,
                            d0={n: builders.xz_critic(specs[n], getattr(self, f"d0_{n}")) for n in self.names},
                            d1={n: builders.xz_critic(specs[n], getattr(self, f"d1_{n}")) for n in self.names},
                            dj=builders.joint_critic(self.d_joint))
        separate = self.config.model.spectral_norm_updates == "per_forward"
        return _map_critics(nets, lambda critic: critic.with_schedule(separate_estimates=separate))

    def use_noise(self, source) -> None:
        """Draw each step's randomness from ``source(n_iter, replica, num_replicas)`` (e.g. recorded draws)."""
        self._noise_source = source

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
    def compile(self, jit_compile: bool = False, steps_per_execution: int = 1, num_replicas: int = 1):
        """Two Adams with torch's update formula (docs/objective.md, "Optimizer"). ``jit_compile`` with several
        replicas compiles each player's forward/backward pass with XLA (whole-step XLA is the training loop's job on
        one replica; docs/platform.md, section 3)."""
        t = self.config.train
        self.d_optimizer = TorchAdam(t.lr, beta_1=t.beta1, beta_2=t.beta2, epsilon=t.epsilon, name="d_adam")
        self.g_optimizer = TorchAdam(t.lr, beta_1=t.beta1, beta_2=t.beta2, epsilon=t.epsilon, name="g_adam")
        self.d_optimizer.build(self.d_variables)
        self.g_optimizer.build(self.g_variables)
        per_replica_xla = jit_compile and num_replicas > 1
        self._d_grads_fn = tf.function(self._d_grads, jit_compile=True) if per_replica_xla else self._d_grads
        self._g_grads_fn = tf.function(self._g_grads, jit_compile=True) if per_replica_xla else self._g_grads
        self._replica_scale = 1.0 / num_replicas
        super().compile(optimizer=None, jit_compile=jit_compile and num_replicas == 1,
                        steps_per_execution=steps_per_execution)
        self.built = True

    def loss_term_names(self) -> tuple[list[str], list[str]]:
        """Names of the D and G terms, found by tracing the objective symbolically (nothing runs)."""
        cfg = self.config.model
        shapes = {n: builders.input_shape(s) for n, s in zip(self.names, cfg.modalities)}
        spec = {call: {n: tf.TensorSpec((2,) + shapes[n], tf.float32) for n in self.names}
                for call in ("d_unimodal", "d_joint", "g_unimodal", "g_joint")}
        names = {}

        def trace(batches):
            noise = StepNoise(0, 0)
            names["d"] = list(discriminator_losses(self.networks, batches, noise, cfg, self.config.loss))
            names["g"] = list(generator_losses(self.networks, batches, noise, cfg, self.config.loss))
            return tf.constant(0.0)

        tf.function(trace).get_concrete_function(spec)
        return names["d"], names["g"]

    # ------------------------------------------------------------------ the training step
    def _noise(self, n_iter):
        context = tf.distribute.get_replica_context()
        return self._noise_source(n_iter, context.replica_id_in_sync_group, context.num_replicas_in_sync)

    def _d_grads(self, batches, n_iter):
        noise = self._noise(n_iter)
        scores = {}
        with tf.GradientTape() as tape:
            terms = discriminator_losses(self.networks, batches, noise, self.config.model, self.config.loss, scores)
            loss = total(terms)
            scaled = loss * self._replica_scale  # gradients are summed over replicas
        return terms, loss, tape.gradient(scaled, self.d_variables), critic_scores(scores)

    def _g_grads(self, batches, n_iter):
        noise = self._noise(n_iter)
        with tf.GradientTape() as tape:
            terms = generator_losses(self.networks, batches, noise, self.config.model, self.config.loss)
            loss = total(terms)
            scaled = loss * self._replica_scale
        return terms, loss, tape.gradient(scaled, self.g_variables)

    def discriminator_step(self, batches, n_iter):
        """One discriminator update on the current generators; returns (terms, loss, diagnostics)."""
        terms, loss, grads, scores = self._d_grads_fn(batches, n_iter)
        self.d_optimizer.apply_gradients(zip(grads, self.d_variables))
        return terms, loss, {**scores, "grad_norm/D": tf.linalg.global_norm(grads)}

    def generator_step(self, batches, n_iter):
        """One encoder/decoder update against the current discriminators; returns (terms, loss, diagnostics)."""
        terms, loss, grads = self._g_grads_fn(batches, n_iter)
        self.g_optimizer.apply_gradients(zip(grads, self.g_variables))
        return terms, loss, {"grad_norm/G": tf.linalg.global_norm(grads)}

    def train_step(self, batches):
        """One iteration; returns this replica's scalars: ``D/<term>``, ``G/<term>``, ``d_loss``, ``g_loss`` and
        diagnostics (critic scores, gradient and weight norms, learning rates)."""
        # The authors' n_iter: iterations completed before this one (0-based), read once, before the D update.
        n_iter = tf.convert_to_tensor(self.d_optimizer.iterations)
        d_terms, d_loss, d_diagnostics = self.discriminator_step(batches, n_iter)
        g_terms, g_loss, g_diagnostics = self.generator_step(batches, n_iter)
        self.update_ema(n_iter)
        out = {f"D/{k}": v for k, v in d_terms.items()}
        out.update({f"G/{k}": v for k, v in g_terms.items()})
        out.update(d_loss=d_loss, g_loss=g_loss)
        out.update({f"critic/{k}": v for k, v in d_diagnostics.items() if not k.startswith("grad_norm")})
        out.update({"player/grad_norm_D": d_diagnostics["grad_norm/D"], "player/grad_norm_G": g_diagnostics[
            "grad_norm/G"], "player/weight_norm_D": tf.linalg.global_norm(self.d_variables),
            "player/weight_norm_G": tf.linalg.global_norm(self.g_variables),
            "player/lr_D": tf.cast(self.d_optimizer.learning_rate, tf.float32),
            "player/lr_G": tf.cast(self.g_optimizer.learning_rate, tf.float32)})
        return out

    def update_ema(self, n_iter):
        """After iteration ``n_iter`` (0-based): copy while ``n_iter <= ema_start``, then decay, as the authors'
        ``model_ema.lerp(model, 0.0 if n_iter <= ema_start else beta)``."""
        t = self.config.train
        decay = tf.where(n_iter > t.ema_start, tf.constant(t.ema_decay, tf.float32), 0.0)
        for shadow, live in self._ema_pairs():
            shadow.assign(decay * shadow + (1.0 - decay) * live)

    def call(self, inputs, training=False):
        """Translate every modality through the EMA nets: ``{a: examples}`` -> ``{a: {b: examples}}``."""
        out = {}
        for a, x in inputs.items():
            mean, _ = losses.split_gaussian(self.ema_encoders[a](x, training=False))
            out[a] = {b: self.ema_decoders[b](mean, training=False) for b in self.names}
        return out


def _map_critics(nets: Networks, fn) -> Networks:
    """``nets`` with ``fn`` applied to every critic."""
    return dataclasses.replace(nets, d0={n: fn(c) for n, c in nets.d0.items()},
                               d1={n: fn(c) for n, c in nets.d1.items()},
                               dj=fn(nets.dj) if nets.dj else None,
                               d_baseline=fn(nets.d_baseline) if nets.d_baseline else None)


@contextlib.contextmanager
def _dtype_policy(name: str):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def count_parameters(models) -> int:
    return int(sum(np.prod(v.shape) for m in models for v in m.trainable_weights))
