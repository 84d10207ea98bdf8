"""The golden tests' port of the authors' PyTorch code: which of their tensors each of our variables holds
(:mod:`.reference_port`, with the authors' layer names per modality kind in :mod:`.reference_names`), and their
recorded noise served by stream name (:mod:`.replay_noise`). Used by ``tests/test_golden.py``,
``tests/test_cub_model.py`` and ``tools/equal_budget.py``; nothing in the package imports it.
"""
