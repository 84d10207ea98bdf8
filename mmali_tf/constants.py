"""How a dataset stores its examples and how the networks read them: the two values of ``examples`` shared by the
data layer (:mod:`mmali_tf.data`) and the modality kinds (:mod:`mmali_tf.kinds`), in a module that imports nothing."""

PIXELS = "pixels"
"""Examples stored as uint8 0..255 images ``[H, W, C]``; the networks see them divided by 255 (in [0, 1]) and the
decoders end in a sigmoid."""

FEATURES = "features"
"""Examples stored as float32 vectors ``[D]``; the networks see the values as they are and the decoders are
linear."""
