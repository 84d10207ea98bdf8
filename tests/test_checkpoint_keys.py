"""The checkpoint keys of every distinct preset architecture are pinned: a change of a variable's name, of the
model's attribute layout or of the optimizers' state would stop runs started before it from resuming. The digest
is the sha256 of the sorted "key shape" lines of a checkpoint written right after the model is built (the
optimizers build their slots at compile time, so no training step is needed)."""

import hashlib

import pytest
import tensorflow as tf

from mmali_tf import checkpointing, configs, training

pytestmark = pytest.mark.slow

# preset -> (number of keys, sha256 of the sorted "key shape" lines). Presets that differ from one of these only in
# data or training settings (mnist_svhn_p20*, *_joint_both_batches) have the same keys and are left out.
PINNED = {
    "quickstart": (189, "f9a9a2abb0266af71374be9c01fa12d907f98ab7506975d52f5173cec2e833b0"),
    "tiny": (341, "9356e220924bd30d70300713f3d16e13bb369acd286907bb859a666e5b3960a8"),
    "mnist_svhn": (341, "004587062604172ebab571398fb705444d143d6dc164a2561490a0122fe64a43"),
    "multimnist_m2": (189, "84ab6314f374e3447375f2c09e907a24a299a2921fafda987d4709aeff855ef5"),
    "multimnist_m3": (269, "a1fc42fc8b2fb7902c795871642616ecbe2ada0f8beeba55343f4b815083e216"),
    "multimnist_m4": (349, "18fe24a5c836e52aafd06fc1f9c822286152fd63c2dcf2dcfbfafc2ac76d896c"),
    "multimnist_m2_joint": (141, "ebf49d6a6a303b5656645107d55b32d9b554340352c289989f9a88bd5e6222ff"),
    "multimnist_m3_joint": (189, "324a20cb15a77d049a4fa9d37632c5998ad01a508120c29a6c2a4cc4dab2761f"),
    "multimnist_m4_joint": (237, "0d0055077d9eaa18ff801c660faf1fc0ae33202767b43aec3010e134c349d547"),
    "cub": (477, "eee2bd521f72ee00bef5335cd8a4bec876a9d3bc58623be6883adcfbb87a1c0a"),
}
# multimnist_m2's digest is also that of ckpt-10000 of the Table 1 campaign run, written on 2026-12-07 by the code of
# 5a2e815-d8456a1 (docs/runs_log.md).


def checkpoint_keys(preset: str, directory: str) -> list[str]:
    model = training.build_model(configs.build(preset))
    prefix = checkpointing.make_checkpoint(model).save(f"{directory}/{preset}")  # save: with save_counter, as runs
    return sorted(f"{name} {shape}" for name, shape in tf.train.list_variables(prefix)
                  if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH"))


def digest(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


@pytest.mark.parametrize("preset", sorted(PINNED))
def test_checkpoint_keys_are_pinned(preset, tmp_path):
    keys = checkpoint_keys(preset, str(tmp_path))
    count, expected = PINNED[preset]
    assert (len(keys), digest(keys)) == (count, expected), (
        f"the checkpoint keys of {preset!r} changed: runs started before this change would not resume; "
        f"first keys now: {keys[:5]}")


if __name__ == "__main__":  # prints PINNED for the presets (run after a deliberate, documented change of keys)
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        for name in ("quickstart", "tiny", "mnist_svhn", "multimnist_m2", "multimnist_m3", "multimnist_m4",
                     "multimnist_m2_joint", "multimnist_m3_joint", "multimnist_m4_joint", "cub"):
            found = checkpoint_keys(name, scratch)
            print(f'    "{name}": ({len(found)}, "{digest(found)}"),', flush=True)
