"""Pure loss functions of the MMALI objective.

Every function maps tensors to tensors with no state, so each can be checked by hand on tiny inputs.
Batch reductions are plain means over the (per-replica) batch; the caller scales for distribution.
Equations refer to the paper; docs/objective.md says where each function is used.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


def cross_entropy(logits: tf.Tensor, label: int) -> tf.Tensor:
    """Batch mean of softmax cross-entropy of ``logits`` [B, K] against the constant class ``label``.

    The discriminator side of the (M+1)-way objective, paper eq. (4).
    """
    return -tf.reduce_mean(tf.nn.log_softmax(logits, axis=-1)[:, label])


def non_saturating(logits: tf.Tensor, label: int) -> tf.Tensor:
    """Multi-class non-saturating generator loss: mean over the wrong classes l != label of CE(logits, l).

    Pushes samples of class ``label`` equally toward every other class (Dandi et al. 2021, cited in the paper's
    experiments section). For K = 2 this is the usual ``-log D`` loss.
    """
    num_classes = logits.shape[-1]
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    wrong = tf.one_hot(label, num_classes, on_value=0.0, off_value=1.0, dtype=logits.dtype)
    per_example = -tf.reduce_sum(log_probs * wrong, axis=-1) / (num_classes - 1)
    return tf.reduce_mean(per_example)


def binary_real(logits: tf.Tensor) -> tf.Tensor:
    """BCE of logits against label 1, ``mean softplus(-l)``."""
    return tf.reduce_mean(tf.nn.softplus(-logits))


def binary_fake(logits: tf.Tensor) -> tf.Tensor:
    """BCE of logits against label 0, ``mean softplus(l)``."""
    return tf.reduce_mean(tf.nn.softplus(logits))


def mean_squared_error(prediction: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean over every element of the squared difference (the reconstruction and cycle terms, docs/objective.md
    section 4), in float32 whatever the inputs' dtype."""
    return tf.reduce_mean(tf.square(tf.cast(prediction, tf.float32) - tf.cast(target, tf.float32)))


def factorized_joint_logits(q_vs_p: Sequence[tf.Tensor], content_vs_prior: Sequence[tf.Tensor],
                            joint_logit: tf.Tensor) -> tf.Tensor:
    """The (M+1)-way joint discriminator logits assembled from the factors (paper eqs. 7 and 10; docs/objective.md section 2).

    Args:
      q_vs_p: per modality m, ``a_m = D0_m[0] - D0_m[1]`` [B], an estimate of log q(x_m,s_m,c)/p(x_m,s_m,c).
      content_vs_prior: per modality m, ``b_m = D1_m`` [B], an estimate of log q(x_m,s_m,c)/(q(x_m,s_m)p(c)).
      joint_logit: ``J`` [B], an estimate of log q(x_1..x_M)/prod_m q(x_m).

    Returns:
      [B, M+1] logits ``[b_1, ..., b_M, -(J + sum_m (a_m - b_m))]``: classes 0..M-1 are "encoder k", class M is
      the decoder, so ``logit_k - logit_M = log q_k(X,S,c)/p(X,S,c)`` at the optimum.
    """
    decoder_logit = -(joint_logit + tf.add_n([a - b for a, b in zip(q_vs_p, content_vs_prior)]))
    return tf.stack(list(content_vs_prior) + [decoder_logit], axis=-1)


def split_gaussian(params: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Split an encoder output ``[mean | logvar]`` [B, 2L] into (mean, logvar), each [B, L]."""
    latent_dim = params.shape[-1] // 2
    return params[..., :latent_dim], params[..., latent_dim:]


def reparameterize(mean: tf.Tensor, logvar: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """``mean + exp(logvar / 2) * noise`` with ``noise ~ N(0, I)`` supplied by the caller (stateless)."""
    return mean + tf.exp(0.5 * logvar) * noise


def geometric_mean_posterior(means: Sequence[tf.Tensor], logvars: Sequence[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """Normalised geometric mean of N diagonal Gaussian experts, the reference's ``poe(..., average=True)``.

    precision-weighted mean ``mu = sum(mu_m / var_m) / sum(1 / var_m)`` and variance ``N / sum(1 / var_m)``
    (harmonic mean of the variances), computed with a logsumexp. No prior expert. This is the multimodal posterior
    the paper computes "in closed form via geometric mean" for synergy (their ``poe(..., average=True)``).
    """
    num_experts = float(len(means))
    logvars = tf.stack(list(logvars), axis=0)
    means = tf.stack(list(means), axis=0)
    poe_logvar = -tf.reduce_logsumexp(-logvars, axis=0)
    weights = tf.exp(poe_logvar[None] - logvars)  # var_poe / var_m, sums to 1 over experts
    mean = tf.reduce_sum(weights * means, axis=0)
    return mean, poe_logvar + tf.math.log(num_experts)
