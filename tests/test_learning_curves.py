"""End to end: mmali_tf.tools.learning_curves trains a tiny run with kept steps, evaluates EMA and live weights,
resumes without evaluating again and draws the figure."""

import json
import os
import subprocess
import sys

from mmali_tf.tools import learning_curves

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK_EVAL = "--extra_eval_flags=--probe_epochs=2,--batch_size=256,--notensorboard"


def run_tool(*args):
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "mmali_tf.tools.learning_curves", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def test_learning_curves_keep_evaluate_resume_and_plot(tmp_path):
    root = str(tmp_path / "curves")
    args = [f"--root={root}", "--configs=tiny", "--steps=2,4", "--live_from=4", "--metrics=latent", QUICK_EVAL,
            "--extra_train_flags=--config.train.save_every=3,--config.train.keep_checkpoints=1",
            f"--plot={root}/curves.png"]
    first = run_tool(*args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    kept = os.path.join(root, "tiny_s0", "checkpoints", "kept")
    assert sorted(os.listdir(kept)) == sorted(f"ckpt-{s}.{e}" for s in (2, 4) for e in ("index", "data-00000-of-00001"))
    records = learning_curves.load_records(os.path.join(root, learning_curves.RECORDS))
    assert [(r["config"], r["step"], r["weights"]) for r in records] == [
        ("tiny", 2, "ema"), ("tiny", 4, "ema"), ("tiny", 4, "live")]
    for r in records:
        assert r["checkpoint"] == os.path.join(kept, f"ckpt-{r['step']}")
        assert r["probe"] == 100.0 * r["metrics"]["latent_acc/grey"] and r["cross"] is None
        assert r["discriminator"] == "factorized" and r["modalities"] == 2
    with open(os.path.join(root, "tiny_s0", "metrics_live.json")) as f:
        live = json.load(f)
    assert live["settings"]["weights"] == "live" and live["step"] == 4
    assert open(f"{root}/curves.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    again = run_tool(*args)  # resumes: the run is finished and every record is there
    assert again.returncode == 0, again.stderr[-3000:]
    assert "mmali_tf.evaluate" not in again.stdout
    assert learning_curves.load_records(os.path.join(root, learning_curves.RECORDS)) == records
