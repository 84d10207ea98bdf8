"""Neural networks of mmali_tf (docs/authors_code.md, section 2): encoders, decoders and spectrally normalised
discriminators, one module per family (``mnist``, ``svhn``, ``image``, ``features``), the joint critics
(``joint``, registered in ``registry``), the coherence classifiers (``classifiers``), spectral normalisation
(``spectral_norm``) and the :class:`~mmali_tf.networks.critic.Critic` through which the objective scores named
tuples.

All networks are Keras functional models with fixed input shapes; all kernels are N(0, 0.02) and all biases zero;
discriminators use ``SNDense`` / ``SNConv2D``, a port of ``torch.nn.utils.spectral_norm`` (one power iteration per
``training=True`` call, gradient through sigma). Build a modality's networks through its kind with
:mod:`mmali_tf.kinds.builders`. This package re-exports nothing, so importing one network module loads only what that
module needs, and no network module imports the kinds.
"""
