"""Apply plausible wiring mistakes to the objective, one at a time, and check that a test catches each.

    python tools/mutation_check.py [--only=NAME ...] [--list]

Works on the git checkout of mmali_tf (the one this package is in, else the current directory's; see
:func:`tools.repository.repository_root`). Each mutation replaces one exact piece of source (which must
occur exactly once) in a temporary copy of the checkout's tracked files (with the working-tree version of the
mutated files and of the tests), then runs the objective's tests there with this interpreter, fastest first,
stopping at the first failure: the spy tests of which network sees which tuple, the hand-checked losses, the EMA
boundary and the golden tests against the authors' code. A mutation is "killed" when a test fails (or the copy no
longer imports). The table lists each mutation, whether it was killed, and the first test that failed. Exit status
1 if any survived (or the unmutated code already fails), 2 for bad arguments (an --only that matches no mutation).

The golden tests read ``$MMALI_GOLDEN_DIR`` (default ``../shared/golden`` beside the checkout); MNIST is not needed.
"""

from __future__ import annotations

import sys  # noqa: E402  (run as ``python tools/<name>.py``: the checkout's mmali_tf and tools packages)
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import flags

from mmali_tf import cli
from mmali_tf.errors import ConfigError, MMALIError
from mmali_tf.tools import flag_checks
from tools import repository

TESTS = ["tests/test_objective_wiring.py", "tests/test_objective.py", "tests/test_losses.py", "tests/test_ema.py",
         "tests/test_golden.py"]
F = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str


O = "mmali_tf/objective.py"
MUTATIONS = [
    Mutation("D0 real/fake swapped (class 0 on the decoded tuple)", O,
             '"encoder": (x[m], z_q[m]),\n            "decoder": (x_p[m], z_p[m]),',
             '"encoder": (x_p[m], z_p[m]),\n            "decoder": (x[m], z_q[m]),'),
    Mutation("D0 labels swapped (encoder tuple labelled decoder)", O,
             'losses.cross_entropy(d0[m]["encoder"], ENCODER)', 'losses.cross_entropy(d0[m]["encoder"], DECODER)'),
    Mutation("DJ real and product-of-marginals swapped", O,
             'terms["dj"] = losses.binary_real(dj["paired"]) + losses.binary_fake(dj["marginals"])',
             'terms["dj"] = losses.binary_fake(dj["paired"]) + losses.binary_real(dj["marginals"])'),
    Mutation("D cross-content tuple gets its own modality's content", O,
             'lat.join(lat.style(z_joint[m]), lat.content(z_joint[k])))',
             'lat.join(lat.style(z_joint[m]), lat.content(z_joint[m])))'),
    Mutation("G 'encoder k' tuples get their own modality's content", O,
             'z_mk = {(m, k): lat.join(lat.style(q_joint[m].sample), lat.content(q_joint[k].sample))',
             'z_mk = {(m, k): lat.join(lat.style(q_joint[m].sample), lat.content(q_joint[m].sample))'),
    Mutation("G style and content swapped in the 'encoder k' tuples", O,
             'z_mk = {(m, k): lat.join(lat.style(q_joint[m].sample), lat.content(q_joint[k].sample))',
             'z_mk = {(m, k): lat.join(lat.style(q_joint[k].sample), lat.content(q_joint[m].sample))'),
    Mutation("D1 negative keeps the prior content in its drawn order (pairing ignores the (x, s) shuffle)", O,
             'tf.gather(prior_shuffle, tf.argsort(shuffle))', 'prior_shuffle'),
    Mutation("D1 negative takes the posterior content instead of a prior draw", O,
             'prior_content = shuffled(lat.content(z_p[m]),', 'prior_content = shuffled(lat.content(z_q[m]),'),
    Mutation("DJ negatives: one permutation for all modalities", O,
             'noise.permutation(f"d_joint/{m}/marginal", tf.shape(x_joint[m])[0])',
             'noise.permutation("d_joint/marginal", tf.shape(x_joint[m])[0])'),
    Mutation("DJ negatives are paired tuples (no shuffle)", O,
             '"marginals": marginals})', '"marginals": tuple(x_joint[m] for m in names)})'),
    Mutation("G unimodal step reuses the D step's prior z", O,
             'z_p = {m: noise.normal(f"g_unimodal/{m}/prior", tf.shape(q[m].sample))',
             'z_p = {m: noise.normal(f"d_unimodal/{m}/prior", tf.shape(q[m].sample))'),
    Mutation("G decoder tuple: one prior style shared by all modalities", O,
             'noise.normal(f"g_joint/{m}/prior_style", tf.stack([batch, cfg.style_dim]))',
             'noise.normal("g_joint/prior_style", tf.stack([batch, cfg.style_dim]))'),
    Mutation("G joint weight 1/(M+1) instead of 2/(M+1)", O,
             'w_joint = 2.0 / (num + 1)', 'w_joint = 1.0 / (num + 1)'),
    Mutation("G unimodal weight without lambda_u", O,
             'w_unimodal = loss_cfg.lambda_unimodal * w_joint', 'w_unimodal = w_joint'),
    Mutation("factorized score: a_m = D0[1] - D0[0] (sign)", O,
             '[d0[m][tuple_name][:, ENCODER] - d0[m][tuple_name][:, DECODER] for m in names]',
             '[d0[m][tuple_name][:, DECODER] - d0[m][tuple_name][:, ENCODER] for m in names]'),
    Mutation("factorized score: decoder logit without the joint critic", "mmali_tf/losses.py",
             'decoder_logit = -(joint_logit + tf.add_n(', 'decoder_logit = -(0.0 * joint_logit + tf.add_n('),
    Mutation("cross-content classes numbered from 1", O,
             'return 2 + [n for n in names if n != own].index(other)',
             'return 1 + [n for n in names if n != own].index(other)'),
    Mutation("G decoded images detached (no gradient to the decoders)", O,
             'x_p[m], x_pj[m] = decoded(nets, m, [z_p[m], z_pj[m]])',
             'x_p[m], x_pj[m] = map(tf.stop_gradient, decoded(nets, m, [z_p[m], z_pj[m]]))'),
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
             'tf.cast(self.epsilon * sqrt_bc2 * r, dtype)', 'tf.cast(self.epsilon * r, dtype)'),
    Mutation("joint content cycle aims at the posterior content", O,
             'terms["joint/content_cycle"] = loss_cfg.lambda_c_rec * losses.mean_squared_error(c_cycle, c_p)',
             'terms["joint/content_cycle"] = loss_cfg.lambda_c_rec * losses.mean_squared_error(c_cycle, '
             'lat.content(q_joint[names[0]].sample))'),
    Mutation("batched critic: every tuple meets the last spectral-norm estimate", "mmali_tf/networks/spectral_norm.py",
             'inverse = tf.reshape(tf.cast(1.0 / self.sigmas(count), products.dtype)',
             'inverse = tf.reshape(tf.cast(1.0 / tf.tile(self.sigmas(count)[-1:], [count]), products.dtype)'),
    Mutation("batched critic: one power iteration for all tuples", "mmali_tf/networks/spectral_norm.py",
             '        for _ in range(count):\n            v = l2_normalize',
             '        for _ in range(1):\n            v = l2_normalize'),
]


def copy_repository(root: Path, target: Path) -> None:
    """The files git tracks in ``root`` into ``target``, the tests and the mutated files as the working tree has
    them (committed or not)."""
    for name in repository.tracked_files(root):
        if (root / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, target / name)
    for name in TESTS + [m.path for m in MUTATIONS]:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target / name)


def apply(mutation: Mutation, root: Path) -> None:
    """Replace the mutation's source in the copy at ``root``; :class:`MMALIError` unless it occurs exactly once."""
    path = root / mutation.path
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise MMALIError(f"mutation {mutation.name!r}: its source occurs {count} times in {mutation.path} "
                         "(update MUTATIONS in mmali_tf/tools/mutation_check.py)")
    path.write_text(text.replace(mutation.old, mutation.new))


def first_failure(output: str) -> str:
    """The first failed or erroring test of pytest's ``output`` ("import/collection error" if none is named)."""
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    if match:
        return match.group(1)
    return "import/collection error" if "error" in output.lower() else "?"


def run_tests(copy: Path, golden_dir: str) -> tuple[bool, str, float]:
    """Run :data:`TESTS` in ``copy``: (failed, the first failing test or "", seconds)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", MMALI_GOLDEN_DIR=golden_dir)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
                          cwd=copy, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return proc.returncode != 0, first_failure(proc.stdout + proc.stderr) if proc.returncode else "", seconds


def check(mutations: list[Mutation], root: Path, golden_dir: str) -> list[tuple[str, bool, str, float]]:
    """Check that every mutation applies, that the unmutated copy passes, then run each mutation; rows of (name,
    killed, first failing test, seconds), printed as they finish."""
    with tempfile.TemporaryDirectory(prefix="mmali_mutation_") as tmp:
        pristine = Path(tmp) / "pristine"
        copy_repository(root, pristine)
        for m in mutations:  # every mutation must apply to today's source
            probe = Path(shutil.copytree(pristine, Path(tmp) / "probe"))
            apply(m, probe)
            shutil.rmtree(probe)
        failed, test, seconds = run_tests(pristine, golden_dir)
        if failed:
            raise MMALIError(f"the unmutated code already fails the tests ({test}; MMALI_GOLDEN_DIR={golden_dir})")
        print(f"unmutated: all objective tests pass ({seconds:.0f} s)", flush=True)
        rows = []
        for i, m in enumerate(mutations, 1):
            copy = Path(tmp) / f"m{i}"
            shutil.copytree(pristine, copy)
            apply(m, copy)
            killed, test, seconds = run_tests(copy, golden_dir)
            shutil.rmtree(copy)
            rows.append((m.name, killed, test, seconds))
            print(f"[{i}/{len(mutations)}] {'killed' if killed else 'SURVIVED'} in {seconds:.0f} s: {m.name}"
                  + (f"  <- {test}" if killed else ""), flush=True)
    return rows


def selected() -> list[Mutation]:
    """The mutations whose name contains one of the --only strings (all without --only)."""
    return [m for m in MUTATIONS if not F.only or any(s in m.name for s in F.only)]


def check_patterns(patterns) -> None:
    """:class:`ConfigError` unless each of the --only strings is part of a mutation's name."""
    unmatched = [p for p in patterns if not any(p in m.name for m in MUTATIONS)]
    if unmatched:
        raise ConfigError(f"no mutation name contains {', '.join(map(repr, unmatched))} (--list shows the names)")


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_multi_string("only", [], "Run only the mutations whose name contains this string (repeatable).")
    flags.DEFINE_bool("list", False, "List the mutations and exit.")
    flag_checks.require("only", check_patterns)


def main(argv) -> None:
    del argv
    mutations = selected()
    if F.list:
        for m in mutations:
            print(f"{m.name}  ({m.path})")
        return
    root = repository.require_repository("mutation_check")
    golden_dir = os.environ.get("MMALI_GOLDEN_DIR") or str(root.parent / "shared" / "golden")
    try:
        rows = check(mutations, root, golden_dir)
    except OSError as exc:
        raise MMALIError(f"copying the checkout to a temporary directory: {exc}") from exc
    width = max(len(r[0]) for r in rows)
    print(f"\n{'mutation':<{width}}  killed  by")
    for name, killed, test, _ in rows:
        print(f"{name:<{width}}  {'yes' if killed else 'NO ':<6}  {test}")
    survived = sum(not r[1] for r in rows)
    print(f"\n{len(rows) - survived} of {len(rows)} mutations killed")
    if survived:
        raise MMALIError(f"{survived} of {len(rows)} mutations survived: no test catches them")


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
