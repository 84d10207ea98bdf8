"""Apply plausible wiring mistakes to the objective, one at a time, and check that a test catches each.

    python tools/mutation_check.py [--only NAME ...] [--list]

Each mutation replaces one exact piece of source (which must occur exactly once) in a temporary copy of the
repository's tracked files, then runs the objective's tests there, fastest first, stopping at the first failure:
the spy tests of which network sees which tuple, the hand-checked losses, the EMA boundary and the golden tests
against the authors' code. A mutation is "killed" when a test fails (or the copy no longer imports). The table
lists each mutation, whether it was killed, and the first test that failed. Exit status 1 if any survived.

The golden tests read ``$MMALI_GOLDEN_DIR`` (default ``../shared/golden``) and MNIST is not needed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_objective_wiring.py", "tests/test_objective.py", "tests/test_losses.py", "tests/test_ema.py",
         "tests/test_golden.py"]


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str


O = "mmali_tf/objective.py"
MUTATIONS = [
    Mutation("D0 real/fake swapped (class 0 on the decoded tuple)", O,
             'terms[f"{m}_c0"] = losses.cross_entropy(d0(x[m], z_q), ENCODER)',
             'terms[f"{m}_c0"] = losses.cross_entropy(d0(x_p, z_p), ENCODER)'),
    Mutation("D0 labels swapped (encoder tuple labelled decoder)", O,
             'losses.cross_entropy(d0(x[m], z_q), ENCODER)', 'losses.cross_entropy(d0(x[m], z_q), DECODER)'),
    Mutation("DJ real and product-of-marginals swapped", O,
             'terms["joint"] = (losses.binary_real(nets.dj(*(x[m] for m in names)))\n'
             '                      + losses.binary_fake(nets.dj(*marginals)))',
             'terms["joint"] = (losses.binary_fake(nets.dj(*(x[m] for m in names)))\n'
             '                      + losses.binary_real(nets.dj(*marginals)))'),
    Mutation("D cross-content tuple gets its own modality's content", O,
             'z_mk = lat.join(lat.style(z_q[m]), lat.content(z_q[k]))\n                label',
             'z_mk = lat.join(lat.style(z_q[m]), lat.content(z_q[m]))\n                label'),
    Mutation("G 'encoder k' tuples get their own modality's content", O,
             'z_mk = {(m, k): lat.join(lat.style(z_q[m]), lat.content(z_q[k]))',
             'z_mk = {(m, k): lat.join(lat.style(z_q[m]), lat.content(z_q[m]))'),
    Mutation("G style and content swapped in the 'encoder k' tuples", O,
             'z_mk = {(m, k): lat.join(lat.style(z_q[m]), lat.content(z_q[k]))',
             'z_mk = {(m, k): lat.join(lat.style(z_q[k]), lat.content(z_q[m]))'),
    Mutation("D1 negative keeps the unshuffled styles", O,
             'z_swapped = lat.join(rows(lat.style(z_q), shuffle)',
             'z_swapped = lat.join(lat.style(z_q)'),
    Mutation("D1 negative takes the posterior content instead of a prior draw", O,
             'rows(lat.content(z_p), prior_shuffle)', 'rows(lat.content(z_q), prior_shuffle)'),
    Mutation("DJ negatives: one permutation for all modalities", O,
             'noise.permutation(f"dB/{m}/marginal", tf.shape(x[m])[0])',
             'noise.permutation("dB/marginal", tf.shape(x[m])[0])'),
    Mutation("DJ negatives are paired tuples (no shuffle)", O,
             'marginals = [rows(x[m], noise.permutation(f"dB/{m}/marginal", tf.shape(x[m])[0])) for m in names]',
             'marginals = [x[m] for m in names]'),
    Mutation("G unimodal step reuses the D step's prior z", O,
             'z_p[m] = noise.normal(f"gA/{m}/prior", tf.shape(z_q[m]))',
             'z_p[m] = noise.normal(f"dA/{m}/prior", tf.shape(z_q[m]))'),
    Mutation("G decoder tuple: one prior style shared by all modalities", O,
             'noise.normal(f"gB/{m}/prior_style", tf.stack([batch, cfg.style_dim]))',
             'noise.normal("gB/prior_style", tf.stack([batch, cfg.style_dim]))'),
    Mutation("G joint weight 1/(M+1) instead of 2/(M+1)", O,
             'w_joint = 2.0 / (num + 1)', 'w_joint = 1.0 / (num + 1)'),
    Mutation("G unimodal weight without lambda_u", O,
             'w_unimodal = loss_cfg.lambda_unimodal * w_joint', 'w_unimodal = w_joint'),
    Mutation("factorized score: a_m = D0[1] - D0[0] (sign)", O,
             '[l0[:, ENCODER] - l0[:, DECODER] for l0 in d0]', '[l0[:, DECODER] - l0[:, ENCODER] for l0 in d0]'),
    Mutation("factorized score: decoder logit without the joint critic", "mmali_tf/losses.py",
             'decoder_logit = -(joint_logit + tf.add_n(', 'decoder_logit = -(0.0 * joint_logit + tf.add_n('),
    Mutation("cross-content classes numbered from 1", O,
             'return 2 + [n for n in names if n != own].index(other)',
             'return 1 + [n for n in names if n != own].index(other)'),
    Mutation("G decoded images detached (no gradient to the decoders)", O,
             'x_p = {m: nets.decoders[m](z_p[m], training=True) for m in names}',
             'x_p = {m: tf.stop_gradient(nets.decoders[m](z_p[m], training=True)) for m in names}'),
    Mutation("non-saturating loss averaged over all classes", "mmali_tf/losses.py",
             'per_example = -tf.reduce_sum(log_probs * wrong, axis=-1) / (num_classes - 1)',
             'per_example = -tf.reduce_sum(log_probs * wrong, axis=-1) / num_classes'),
    Mutation("EMA starts one step early (>= instead of >)", "mmali_tf/model.py",
             'decay = tf.where(n_iter > t.ema_start,', 'decay = tf.where(n_iter >= t.ema_start,'),
    Mutation("EMA starts one step late", "mmali_tf/model.py",
             'decay = tf.where(n_iter > t.ema_start,', 'decay = tf.where(n_iter > t.ema_start + 1,'),
    Mutation("n_iter read after the D update (EMA and G noise off by one)", "mmali_tf/model.py",
             'n_iter = tf.convert_to_tensor(self.d_optimizer.iterations)', 'n_iter = self.d_optimizer.iterations'),
    Mutation("Adam: Keras' epsilon placement instead of torch's", "mmali_tf/optimizers.py",
             'denominator = ops.add(ops.divide(ops.sqrt(v), tf.cast(tf.sqrt(bias_correction2), dtype)), '
             'self.epsilon)',
             'denominator = ops.divide(ops.add(ops.sqrt(v), self.epsilon), tf.cast(tf.sqrt(bias_correction2), '
             'dtype))'),
    Mutation("joint content cycle aims at the posterior content", O,
             'terms["joint_c_rec"] = loss_cfg.lambda_c_rec * losses.mean_squared_error(c_cycle, c_p)',
             'terms["joint_c_rec"] = loss_cfg.lambda_c_rec * losses.mean_squared_error(c_cycle, '
             'lat.content(z_q[names[0]]))'),
]


def copy_repository(target: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    for name in files.decode().split("\0"):
        if name and (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    for name in TESTS + [m.path for m in MUTATIONS]:  # the working-tree version, committed or not
        shutil.copy2(REPO / name, target / name)


def apply(mutation: Mutation, root: Path) -> None:
    path = root / mutation.path
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise SystemExit(f"error: mutation {mutation.name!r}: its source occurs {count} times in {mutation.path}")
    path.write_text(text.replace(mutation.old, mutation.new))


def first_failure(output: str) -> str:
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    if match:
        return match.group(1)
    return "import/collection error" if "error" in output.lower() else "?"


def run_tests(root: Path) -> tuple[bool, str, float]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("MMALI_GOLDEN_DIR", str(REPO.parent / "shared" / "golden"))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
                          cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    output = proc.stdout + proc.stderr
    return proc.returncode != 0, first_failure(output) if proc.returncode else "", seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="run only mutations whose name contains one of these")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    mutations = [m for m in MUTATIONS if not args.only or any(s in m.name for s in args.only)]
    if args.list:
        for m in mutations:
            print(f"{m.name}  ({m.path})")
        return 0
    if not mutations:
        print("error: no mutation matches --only", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mmali_mutation_") as tmp:
        pristine = Path(tmp) / "pristine"
        copy_repository(pristine)
        for m in mutations:  # every mutation must apply to today's source
            apply(m, Path(shutil.copytree(pristine, Path(tmp) / "probe", dirs_exist_ok=True)))
            shutil.rmtree(Path(tmp) / "probe")
        killed, _, seconds = run_tests(pristine)
        if killed:
            print(f"error: the unmutated code already fails the tests ({first_failure('')})", file=sys.stderr)
            return 2
        print(f"unmutated: all objective tests pass ({seconds:.0f} s)", flush=True)
        rows = []
        for i, m in enumerate(mutations, 1):
            root = Path(tmp) / f"m{i}"
            shutil.copytree(pristine, root)
            apply(m, root)
            killed, test, seconds = run_tests(root)
            shutil.rmtree(root)
            rows.append((m.name, killed, test, seconds))
            print(f"[{i}/{len(mutations)}] {'killed' if killed else 'SURVIVED'} in {seconds:.0f} s: {m.name}"
                  + (f"  <- {test}" if killed else ""), flush=True)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'mutation':<{width}}  killed  by")
    for name, killed, test, _ in rows:
        print(f"{name:<{width}}  {'yes' if killed else 'NO ':<6}  {test}")
    survived = sum(not r[1] for r in rows)
    print(f"\n{len(rows) - survived} of {len(rows)} mutations killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
