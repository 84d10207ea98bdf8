"""Apply plausible mistakes to the code, one at a time, and check that a test catches each.

    python tools/mutation_check.py [--groups=objective,evaluation,...] [--only=NAME ...] [--list] [--markdown]

Works on the git checkout of mmali_tf (the one this package is in, else the current directory's; see
:func:`tools.repository.repository_root`). Each mutation replaces one exact piece of source (which must
occur exactly once) in a temporary copy of the checkout's tracked files (with the working-tree version of the
mutated files and of the tests), then runs the tests it names there with this interpreter, in order, stopping at the
first failure. A mutation is "killed" when a test fails (or the copy no longer imports). Before any mutation, the
unmutated copy must pass every test the selected mutations name.

The table :data:`MUTATIONS` is data: per mutation its group, a name, the file, the exact source and its replacement,
and the tests that should kill it. Groups (:data:`GROUPS`):

* ``objective``: wiring of the objective, losses, EMA and optimizer; each runs the objective's tests
  (:data:`OBJECTIVE_TESTS`: the spy tests of which network sees which tuple, the hand-checked losses, the EMA boundary
  and the golden tests against the authors' code, minutes each).
* ``evaluation`` (probe, coherence, CCA), ``data`` (pairing, unimodal pools, the input pipeline), ``export``
  (signatures) and ``checkpoints`` (fallback, and which weights evaluation and export restore): each names a few
  fast tests that catch it for the right reason (a hand-checked value, a spy, a round trip).

The table lists each mutation, whether it was killed, the first test that failed and the seconds it took
(``--markdown``: as a Markdown table, BUILD.md's). Exit status 1 if any survived (or the unmutated code already
fails), 2 for bad arguments (an --only that matches no mutation, an unknown group).

The golden tests read ``$MMALI_GOLDEN_DIR`` (default ``../shared/golden`` beside the checkout); the data tests read
genuine MNIST from ``$MMALI_DATA_DIR`` (default ``../shared/data``).
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

F = flags.FLAGS
GROUPS = ("objective", "evaluation", "data", "export", "checkpoints")
OBJECTIVE_TESTS = ("tests/test_objective_wiring.py", "tests/test_objective.py", "tests/test_losses.py",
                   "tests/test_ema.py", "tests/test_golden.py")


@dataclasses.dataclass(frozen=True)
class Mutation:
    """One plausible mistake: ``old`` (exactly once in ``path``) becomes ``new``; ``tests`` (files or pytest node
    ids, run in order) should fail."""

    name: str
    path: str
    old: str
    new: str
    group: str = "objective"
    tests: tuple[str, ...] = OBJECTIVE_TESTS


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

# The groups beyond the objective: each mutation names the fast tests that catch it (tests/<file>.py::<test>).
EV, CO, CC = "mmali_tf/evaluation/latent.py", "mmali_tf/evaluation/coherence.py", "mmali_tf/evaluation/cca.py"
METRICS_TESTS = "tests/test_evaluation_metrics.py::"
EVALUATION = [
    Mutation("probe fitted on the test split", EV,
             "histories = train_probes(tr, train_splits[name].labels, te, test_splits[name].labels, groups,",
             "histories = train_probes(te, test_splits[name].labels, te, test_splits[name].labels, groups,",
             "evaluation", (METRICS_TESTS + "test_probe_is_fitted_on_train_and_scored_on_test",)),
    Mutation("probe scored on the train split", EV,
             "histories = train_probes(tr, train_splits[name].labels, te, test_splits[name].labels, groups,",
             "histories = train_probes(tr, train_splits[name].labels, tr, train_splits[name].labels, groups,",
             "evaluation", (METRICS_TESTS + "test_probe_is_fitted_on_train_and_scored_on_test",)),
    Mutation("clean probe reports the best epoch (selection on test)", EV,
             'out[f"latent_acc{variant}/{name}"] = history[-1]', 'out[f"latent_acc{variant}/{name}"] = max(history)',
             "evaluation",
             (METRICS_TESTS + "test_clean_probe_reports_the_final_epoch_and_the_reference_also_the_best",)),
    Mutation("probe features z-scored with the test split's statistics", EV,
             "centre = train[0].mean(axis=0)\n    scale = train[0].std(axis=0)",
             "centre = test[0].mean(axis=0)\n    scale = test[0].std(axis=0)",
             "evaluation", (METRICS_TESTS + "test_standardize_uses_the_train_statistics_for_both_splits",)),
    Mutation("cross coherence decodes and classifies with the source modality", CO,
             'counts[f"coherence/{a}_to_{b}"] = correct(b, z)', 'counts[f"coherence/{a}_to_{b}"] = correct(a, z)',
             "evaluation", (METRICS_TESTS + "test_constant_decoder_scores_chance",)),
    Mutation("joint coherence: each decoder gets its own prior draw", CO,
             "preds = [_predict(classifiers[n], decoders[n](z, training=False)) for n in names]",
             "preds = [_predict(classifiers[n], decoders[n](StepNoise(settings.seed, batch_index).normal("
             "f\"joint/prior/{n}\", tf.stack([size, latent_dim])), training=False)) for n in names]",
             "evaluation", (METRICS_TESTS + "test_identity_translator_is_fully_coherent",)),
    Mutation("joint chance level: mean over classes instead of the sum", CO,
             '"coherence/joint_chance": float(np.sum(np.prod(shares, axis=0)))',
             '"coherence/joint_chance": float(np.mean(np.prod(shares, axis=0)))',
             "evaluation", (METRICS_TESTS + "test_identity_translator_is_fully_coherent",)),
    Mutation("synergy keeps the modality's own content instead of the joint one", CO,
             "correct(m, lat.join(lat.style(z_own), lat.content(z_joint)))",
             "correct(m, lat.join(lat.style(z_own), lat.content(z_own)))",
             "evaluation", (METRICS_TESTS + "test_synergy_uses_the_precision_weighted_joint_posterior",)),
    Mutation("CCA fitted on uncentred views", CC,
             "centred = [v - mean for v, mean in zip(views, means)]", "centred = list(views)",
             "evaluation", ("tests/test_cca.py::test_solver_matches_an_independent_float64_cca",)),
    Mutation("CCA projection does not centre the features", CC,
             "return (x - self.means[view]) @ self.projections[view]", "return x @ self.projections[view]",
             "evaluation", ("tests/test_cca.py::test_correlation_score_on_a_hand_checked_case",)),
    Mutation("CCA of the correlation metric fitted on the test tuples", "mmali_tf/evaluation/correlation.py",
             "fit_train_cca(names, ctx.train_splits(), ctx.train_pairs(),",
             "fit_train_cca(names, ctx.test_splits(), ctx.test_pairs(),",
             "evaluation", ("tests/test_correlation.py::test_scores_are_the_authors_computation",)),
    Mutation("cached CCA found by the modality names, not the train data", "mmali_tf/evaluation/correlation.py",
             'h.update(f"|{name}:{splits[name].fingerprint}".encode())', 'h.update(f"|{name}".encode())',
             "evaluation", ("tests/test_correlation.py::test_the_fit_is_cached_by_fingerprint_and_solvers_agree",)),
]
PA, UP = "mmali_tf/data/pairing.py", "mmali_tf/data/unpaired.py"
DATA = [
    Mutation("pairing takes every modality's members of a class from the first modality", PA,
             "per_mod = {m: members(m, int(cls)) for m in names}",
             "per_mod = {m: members(names[0], int(cls)) for m in names}",
             "data", ("tests/test_pairing.py::test_hand_example",)),
    Mutation("pairing: one permutation shared by all modalities", PA,
             "for _ in range(dm):\n            for m in names:\n"
             "                chunks[m].append(kept[m][rng.permutation(n)])",
             "for _ in range(dm):\n            shared = rng.permutation(n)\n            for m in names:\n"
             "                chunks[m].append(kept[m][shared])",
             "data", ("tests/test_pairing.py::test_multimnist_style_four_modalities",)),
    Mutation("CUB pairs: caption t of image t mod N (caption-major rows)", "mmali_tf/data/cub_features.py",
             "return self.caption_features.reshape(-1, CAPTION_FEATURE_DIM)",
             "return self.caption_features.transpose(1, 0, 2).reshape(-1, CAPTION_FEATURE_DIM)",
             "data", ("tests/test_cub_features.py::test_round_trip_and_pairing",)),
    Mutation("unpaired images include the paired ones", UP,
             "rest = np.setdiff1d(np.arange(num_images), np.unique(paired))", "rest = np.arange(num_images)",
             "data", ("tests/test_unpaired.py::test_pools_are_paired_plus_disjoint_unpaired",)),
    Mutation("unimodal pool leaves out the paired images", UP,
             "pools[name] = np.concatenate([np.unique(idx), unpaired[name]]).astype(np.int64)",
             "pools[name] = np.asarray(unpaired[name], np.int64)",
             "data", ("tests/test_unpaired.py::test_pools_are_paired_plus_disjoint_unpaired",)),
    Mutation("joint-critic negatives drawn from the paired tuples", UP,
             'PAIRED_CALLS = ("d_joint", "g_joint")\nPOOL_CALLS = ("d_unimodal", "g_unimodal", "d_marginal")',
             'PAIRED_CALLS = ("d_joint", "g_joint", "d_marginal")\nPOOL_CALLS = ("d_unimodal", "g_unimodal")',
             "data", ("tests/test_unpaired.py::test_marginal_batches_mix_tuples_and_paired_batches_do_not",)),
    Mutation("every modality's pool stream drawn with the same seed", UP,
             "seed * 1000 + 1 + i, start_step", "seed * 1000 + 1, start_step",
             "data", ("tests/test_unpaired.py::test_marginal_batches_mix_tuples_and_paired_batches_do_not",)),
    Mutation("a resumed input pipeline starts again at the first tuples", "mmali_tf/data/pipeline.py",
             "epoch, offset = divmod(int(start_step) * int(per_step), num_tuples)", "epoch, offset = 0, 0",
             "data", ("tests/test_pipeline.py::test_resume_gives_the_same_batches",)),
]
EX, CK = "mmali_tf/export.py", "mmali_tf/checkpointing.py"
FRESH_EXPORT = ("tests/test_export.py::test_fresh_process_matches_keras_for_every_signature",)
EXPORT = [
    Mutation("signatures built on the live networks, not the EMA ones", EX,
             "self.encoders = model.ema_encoders\n        self.decoders = model.ema_decoders",
             "self.encoders = model.encoders\n        self.decoders = model.decoders",
             "export", ("tests/test_export.py::test_export_serves_the_ema_networks_not_the_live_ones",)),
    Mutation("uint8 signatures do not divide by 255", EX,
             "return tf.cast(x, tf.float32) / 255.0", "return tf.cast(x, tf.float32)",
             "export", ("tests/test_export.py::test_uint8_images_are_divided_by_255",)),
    Mutation("reconstruct_joint decodes the first modality's content", EX,
             "content = joint_mean[:, self.style_dim:]", "content = posteriors[self.names[0]][0][:, self.style_dim:]",
             "export", FRESH_EXPORT),
    Mutation("translate_with_style ignores the given style", EX,
             "return {self.key(b): self._decode(b, style, mean[:, self.style_dim:])}",
             "return {self.key(b): self._decode(b, mean[:, : self.style_dim], mean[:, self.style_dim:])}",
             "export", FRESH_EXPORT),
    Mutation("sample_joint scalars declared with shape [] (the rank check optimized away)", EX,
             "return tf.TensorSpec(None, dtype, name=name)", "return tf.TensorSpec([], dtype, name=name)",
             "export", ("tests/test_export.py::test_in_graph_scalar_check",)),
]
CKPT_TESTS = "tests/test_checkpointing.py::"
CHECKPOINTS = [
    Mutation("fallback tries the oldest checkpoint first", CK,
             "return sorted(found, key=lambda f: f.step, reverse=True)",
             "return sorted(found, key=lambda f: f.step, reverse=False)",
             "checkpoints", (CKPT_TESTS + "test_the_newest_checkpoint_is_restored",
                             CKPT_TESTS + "test_a_damaged_newest_checkpoint_falls_back_to_the_next_newest")),
    Mutation("checkpoints ordered by name (ckpt-8 before ckpt-10)", CK,
             "return sorted(found, key=lambda f: f.step, reverse=True)",
             "return sorted(found, key=lambda f: f.prefix, reverse=True)",
             "checkpoints", (CKPT_TESTS + "test_the_newest_checkpoint_is_restored",)),
    Mutation("no fallback: only the newest checkpoint is tried", CK,
             "for i, candidate in enumerate(found):", "for i, candidate in enumerate(found[:1]):",
             "checkpoints", (CKPT_TESTS + "test_a_damaged_newest_checkpoint_falls_back_to_the_next_newest",)),
    Mutation("a checkpoint that does not match the model counts as restored", CK,
             "checkpoint.restore(prefix).assert_existing_objects_matched()",
             "checkpoint.restore(prefix).expect_partial()",
             "checkpoints", (CKPT_TESTS + "test_a_checkpoint_of_another_model_is_skipped",)),
    Mutation("rebuilt state file lists the damaged newer checkpoint", CK,
             "if f.complete and f.step <= restored.step]", "if f.complete]",
             "checkpoints", (CKPT_TESTS + "test_the_rebuilt_state_file_lists_what_restored",)),
    Mutation("evaluate and export restore the live networks as the EMA ones", CK,
             'saved_as = "ema_{part}_{n}" if weights == "ema" else "{part}_{n}"',
             'saved_as = "{part}_{n}" if weights == "ema" else "ema_{part}_{n}"',
             "checkpoints", ("tests/test_export.py::test_restore_refuses_a_checkpoint_without_the_ema_networks",)),
]
MUTATIONS += EVALUATION + DATA + EXPORT + CHECKPOINTS


def tested_files(mutations) -> list[str]:
    """The test files that ``mutations`` name (node ids without their ``::test``), in order, once each."""
    return list(dict.fromkeys(test.split("::", 1)[0] for m in mutations for test in m.tests))


def tests_of(mutations) -> list[str]:
    """Every test (file or node id) that ``mutations`` name, in order, once each."""
    return list(dict.fromkeys(test for m in mutations for test in m.tests))


def copy_repository(root: Path, target: Path) -> None:
    """The files git tracks in ``root`` into ``target``, the tests and the mutated files as the working tree has
    them (committed or not)."""
    for name in repository.tracked_files(root):
        if (root / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, target / name)
    for name in tested_files(MUTATIONS) + [m.path for m in MUTATIONS]:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target / name)


def apply(mutation: Mutation, root: Path) -> None:
    """Replace the mutation's source in the copy at ``root``; :class:`MMALIError` unless it occurs exactly once."""
    path = root / mutation.path
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise MMALIError(f"mutation {mutation.name!r}: its source occurs {count} times in {mutation.path} "
                         "(update MUTATIONS in tools/mutation_check.py)")
    path.write_text(text.replace(mutation.old, mutation.new))


def first_failure(output: str) -> str:
    """The first failed or erroring test of pytest's ``output`` ("import/collection error" if none is named)."""
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    if match:
        return match.group(1)
    return "import/collection error" if "error" in output.lower() else "?"


def run_tests(copy: Path, tests, golden_dir: str) -> tuple[bool, str, float]:
    """Run ``tests`` in ``copy``, stopping at the first failure: (failed, the first failing test or "", seconds)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", MMALI_GOLDEN_DIR=golden_dir)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                          cwd=copy, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    return proc.returncode != 0, first_failure(proc.stdout + proc.stderr) if proc.returncode else "", seconds


@dataclasses.dataclass(frozen=True)
class Outcome:
    mutation: Mutation
    killed: bool
    test: str  # the first test that failed ("" if none did)
    seconds: float


def check(mutations: list[Mutation], root: Path, golden_dir: str) -> list[Outcome]:
    """Check that every mutation applies and that the unmutated copy passes their tests, then run each mutation;
    one outcome per mutation, printed as it finishes."""
    with tempfile.TemporaryDirectory(prefix="mmali_mutation_") as tmp:
        pristine = Path(tmp) / "pristine"
        copy_repository(root, pristine)
        for m in mutations:  # every mutation must apply to today's source
            probe = Path(shutil.copytree(pristine, Path(tmp) / "probe"))
            apply(m, probe)
            shutil.rmtree(probe)
        tests = tests_of(mutations)
        failed, test, seconds = run_tests(pristine, tests, golden_dir)
        if failed:
            raise MMALIError(f"the unmutated code already fails the tests ({test}; MMALI_GOLDEN_DIR={golden_dir})")
        print(f"unmutated: the {len(tests)} test selections of these mutations pass ({seconds:.0f} s)", flush=True)
        outcomes = []
        for i, m in enumerate(mutations, 1):
            copy = Path(tmp) / f"m{i}"
            shutil.copytree(pristine, copy)
            apply(m, copy)
            killed, test, seconds = run_tests(copy, m.tests, golden_dir)
            shutil.rmtree(copy)
            outcomes.append(Outcome(m, killed, test, seconds))
            print(f"[{i}/{len(mutations)}] {'killed' if killed else 'SURVIVED'} in {seconds:.0f} s: {m.group}: "
                  f"{m.name}" + (f"  <- {test}" if killed else ""), flush=True)
    return outcomes


def selected() -> list[Mutation]:
    """The mutations of the --groups whose name contains one of the --only strings (all without --only)."""
    return [m for m in MUTATIONS if m.group in F.groups and (not F.only or any(s in m.name for s in F.only))]


def check_patterns(patterns) -> None:
    """:class:`ConfigError` unless each of the --only strings is part of a mutation's name."""
    unmatched = [p for p in patterns if not any(p in m.name for m in MUTATIONS)]
    if unmatched:
        raise ConfigError(f"no mutation name contains {', '.join(map(repr, unmatched))} (--list shows the names)")


def table(outcomes: list[Outcome], markdown: bool) -> list[str]:
    """The result lines: aligned columns, or a Markdown table (BUILD.md's)."""
    if markdown:
        lines = ["| group | mutation | file | killed | first failing test | s |", "|---|---|---|---|---|---:|"]
        return lines + [f"| {o.mutation.group} | {o.mutation.name} | `{o.mutation.path}` | "
                        f"{'yes' if o.killed else '**no**'} | `{o.test}` | {o.seconds:.0f} |" for o in outcomes]
    width = max(len(o.mutation.name) for o in outcomes)
    lines = [f"{'group':<11}  {'mutation':<{width}}  killed  by"]
    return lines + [f"{o.mutation.group:<11}  {o.mutation.name:<{width}}  {'yes' if o.killed else 'NO ':<6}  {o.test}"
                    for o in outcomes]


def define_flags() -> None:
    """Define this tool's flags and their validators (on demand: importing the module defines nothing)."""
    flags.DEFINE_list("groups", list(GROUPS), f"Run the mutations of these groups ({', '.join(GROUPS)}).")
    flags.DEFINE_multi_string("only", [], "Run only the mutations whose name contains this string (repeatable).")
    flags.DEFINE_bool("list", False, "List the mutations (group, name, file, tests) and exit.")
    flags.DEFINE_bool("markdown", False, "Print the result table as Markdown (BUILD.md's).")
    flag_checks.require_names("groups", GROUPS)
    flag_checks.require("only", check_patterns)


def main(argv) -> None:
    del argv
    mutations = selected()
    if not mutations:
        raise ConfigError(f"--only={','.join(F.only)} matches no mutation of the groups {', '.join(F.groups)}")
    if F.list:
        for m in mutations:
            print(f"{m.group}: {m.name}  ({m.path}; {', '.join(m.tests)})")
        return
    root = repository.require_repository("mutation_check")
    golden_dir = os.environ.get("MMALI_GOLDEN_DIR") or str(root.parent / "shared" / "golden")
    try:
        outcomes = check(mutations, root, golden_dir)
    except OSError as exc:
        raise MMALIError(f"copying the checkout to a temporary directory: {exc}") from exc
    print()
    for line in table(outcomes, F.markdown):
        print(line)
    survived = sum(not o.killed for o in outcomes)
    minutes = sum(o.seconds for o in outcomes) / 60
    print(f"\n{len(outcomes) - survived} of {len(outcomes)} mutations killed ({minutes:.1f} min of tests)")
    if survived:
        raise MMALIError(f"{survived} of {len(outcomes)} mutations survived: no test catches them")


def entry_point() -> None:
    define_flags()
    cli.run_main(main)


if __name__ == "__main__":
    entry_point()
