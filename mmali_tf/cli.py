"""The command-line layer shared by every entry point and tool: config flags generated from the dataclasses, dotted
overrides, one-line errors.

Config flags. ``--config=<preset or file.py>`` picks the starting config (:mod:`mmali_tf.configs`); every setting of
:mod:`mmali_tf.config` is a flag ``--config.<section>.<field>`` (``--config.train.max_iter=3000``), with its short
name as an alias (``--max_iter=3000``, the names of the flagfiles of earlier versions). The flags have no defaults
of their own: a flag that is not given leaves the preset's value, and the preset builds on the dataclass defaults,
so every setting has exactly one default. ``--flagfile`` works as absl defines it.

Diagnostics. TensorFlow's C++ log level defaults to warnings and errors (``TF_CPP_MIN_LOG_LEVEL=1``: INFO lines
are hidden, GPU-library errors are not; set ``TF_CPP_MIN_LOG_LEVEL`` to change it). The few notices it prints while
loading, before that level applies (the oneDNN notice, absl's pre-init line), are dropped; anything else it prints
while loading is passed on. Ctrl-C or SIGTERM while TensorFlow loads (seconds) ends the process with one line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import shlex
import signal
import sys
import traceback
import typing

import re  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

# Start-up notices TensorFlow prints while loading, before its log level applies: harmless, and they would bury an
# entry point's one-line error. Everything else it prints while loading (e.g. GPU-library errors) is passed on.
_BANNERS = re.compile(r"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
                      r"This TensorFlow binary is optimized to use available CPU instructions|"
                      r"rebuild TensorFlow with the appropriate compiler flags")


def _import_tensorflow_without_banners() -> None:
    if "tensorflow" in sys.modules:
        return
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        try:
            os.dup2(captured.fileno(), 2)
            import tensorflow  # noqa: F401  (deferred: loaded with stderr captured, to drop its banners)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        for line in captured.read().decode(errors="replace").splitlines():
            if not _BANNERS.search(line):
                print(line, file=sys.stderr)


class _Terminated(BaseException):
    """SIGTERM outside the training loop (which handles it itself)."""


# Outside the training loop: signal -> (exit status, the one line).
STOPS = {signal.SIGINT: (130, "interrupted by SIGINT (Ctrl-C); run the same command again"),
         signal.SIGTERM: (143, "terminated by SIGTERM; run the same command again")}
BACKSTOP_SECONDS = 5.0


def _exit_now(signum: int) -> None:
    code, line = STOPS[signum]
    sys.stdout.flush()
    os.write(2, (line + "\n").encode())  # not print: the main thread may hold sys.stderr's lock
    os._exit(code)


class _StopSignals:
    """SIGINT and SIGTERM while a command starts or runs outside the training loop (which installs its own).

    The first raises KeyboardInterrupt / ``_Terminated`` where the program is, so that its cleanups run and the
    command ends with one line; since TensorFlow's C++ code can turn that exception into another one and carry on,
    it also arms a backstop that prints the line and ends the process if it still runs ``BACKSTOP_SECONDS`` later.
    A second signal ends the process at once. SIGINT is left alone where it is ignored (a background job).
    """

    def __init__(self):
        self.pending = None
        self._backstop = None

    def _handle(self, signum, frame):
        if self.pending is not None:
            _exit_now(signum)
        self.pending = signum
        self._backstop = threading.Timer(BACKSTOP_SECONDS, _exit_now, (signum,))
        self._backstop.daemon = True
        self._backstop.start()
        raise KeyboardInterrupt() if signum == signal.SIGINT else _Terminated()

    def disarm(self) -> int | None:
        """Cancel the backstop; returns the signal that came meanwhile, if any."""
        if self._backstop is not None:
            self._backstop.cancel()
        pending, self.pending, self._backstop = self.pending, None, None
        return pending

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, self._handle)}
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._handle)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


_STOP_SIGNALS = _StopSignals()


def _import_tensorflow_stoppably() -> None:
    """Import TensorFlow (seconds); Ctrl-C or SIGTERM meanwhile ends the process with one line, not a traceback."""
    with _STOP_SIGNALS.installed():
        try:
            _import_tensorflow_without_banners()
        except (KeyboardInterrupt, _Terminated):
            pass
        stopped = _STOP_SIGNALS.disarm()
    if stopped is not None:
        code, line = STOPS[stopped]
        print(line, file=sys.stderr, flush=True)
        sys.exit(code)


_import_tensorflow_stoppably()

from absl import app, flags  # noqa: E402

# Below the TensorFlow import: kinds, checks and distribution load TensorFlow, whose load banners are filtered above.
from mmali_tf import checks, configs, distribution, kinds  # noqa: E402
from mmali_tf import config as config_lib  # noqa: E402
from mmali_tf.config import ExperimentConfig, ModalitySpec  # noqa: E402
from mmali_tf.data.datasets import DATASETS  # noqa: E402
from mmali_tf.errors import MMALIError, os_reason  # noqa: E402
from mmali_tf.networks.registry import JOINT_ARCHITECTURE_REGISTRY  # noqa: E402

VERBOSE_ENV = "MMALI_VERBOSE"


# ---------------------------------------------------------------------------------------------------- flags
def flag_name(path: str) -> str:
    return f"config.{path}"


def define_config_flags() -> None:
    """``--config``, ``--dry_run`` and one flag per setting (its dotted path, with its short name as the one alias); defined once."""
    if "config" in flags.FLAGS:
        return
    flags.DEFINE_string("config", "defaults", "Preset name (" + ", ".join(_preset_names()) + ") or a .py file "
                        "defining get_config(); settings flags override it.")
    flags.DEFINE_bool("dry_run", False, "Print the resolved config and exit.")
    flags.DEFINE_multi_string("modality_option", [], kinds.modality_option_help())
    for path, (kind, f) in config_lib.field_types().items():
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = f"{f.metadata['help']}{_registry_help(path)} (default: {_show(default)})"
        base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
        name = flag_name(path)
        if path in config_lib.LIST_PARSERS:
            flags.DEFINE_list(name, None, text)
        elif base is bool:
            flags.DEFINE_bool(name, None, text)
        elif base is int:
            flags.DEFINE_integer(name, None, text)
        elif base is float:
            flags.DEFINE_float(name, None, text)
        else:
            flags.DEFINE_string(name, None, text)
        short = f.metadata["flag"] or path.rsplit(".", 1)[-1]
        flags.DEFINE_alias(short, name)


def _registry_help(path: str) -> str:
    """The registered choices of a setting whose values are registry names (read when the flags are defined)."""
    if path == "model.modalities":
        return f" Datasets: {DATASETS.help_text()}; kinds (networks): {kinds.KINDS.help_text()}."
    if path == "model.joint_architecture":
        return f" Registered: {JOINT_ARCHITECTURE_REGISTRY.help_text()}."
    return ""


def _preset_names():
    return list(configs.PRESETS)


def _show(value) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], ModalitySpec):
        return ",".join(f"{m.name}:{m.dataset}:{m.kind}" for m in value)
    return "auto" if value is None else str(value)


def config_from_flags(flag_values=None) -> ExperimentConfig:
    """The preset of ``--config`` with every config flag that was given (command line or flagfile) applied,
    validated and its registry names checked (:func:`mmali_tf.checks.check_registered`)."""
    values = flag_values or flags.FLAGS
    overrides = {path: values[flag_name(path)].value for path in config_lib.field_types()
                 if values[flag_name(path)].present}
    config = configs.get(values.config)
    config = config_lib.apply_overrides(config, overrides)
    if values.modality_option:
        modalities = kinds.apply_modality_options(config.model.modalities, values.modality_option)
        config = config.replace(model=dict(modalities=tuple(modalities)))
    return checks.check_registered(config.validate())


def resolved_config_from_flags() -> ExperimentConfig:
    """:func:`config_from_flags` with its "auto" execution settings resolved for this machine
    (``mmali_tf.distribution.resolve``), as training runs it. With ``--dry_run`` it is printed and the program ends
    (exit status 0)."""
    config = distribution.resolve(config_from_flags())
    exit_if_dry_run(config)
    return config


def exit_if_dry_run(config: ExperimentConfig) -> None:
    """With ``--dry_run``: print ``config`` with its "auto" settings resolved for this machine and end (status 0)."""
    if flags.FLAGS.dry_run:
        print(distribution.resolve(config).to_json())
        sys.exit(0)


# ---------------------------------------------------------------------------------------------------- running
def parse_flags_one_line(argv):
    """absl parsing, but a bad flag ends with one ``error:`` line and exit status 2.

    absl reports every failing flag validator, one per line; the line is the first of them (in the order the
    validators were registered), with the count of the others.
    """
    try:
        return flags.FLAGS(argv)
    except flags.Error as exc:
        problems = str(exc).splitlines() or [type(exc).__name__]
        others = f" (and {len(problems) - 1} more bad flag value(s))" if len(problems) > 1 else ""
        print(f"error: {problems[0]}{others}", file=sys.stderr)
        sys.exit(2)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def run_main(main, argv=None) -> None:
    """``app.run`` with every failure as one last line on stderr and a non-zero exit status, no traceback.

    User-facing errors (:class:`MMALIError`: bad data, bad config, divergence) and OS errors (permissions, a full
    disk, a path that is a file) are one ``error:`` line and exit status 1. A bad flag is one line and exit status
    2: while parsing (:func:`parse_flags_one_line`), and when ``main`` raises ``absl.flags.ValidationError`` for a
    value it can only check later (e.g. flags it hands to another command). Training stopped by a signal
    (``exit_code`` on the error) prints its line with the resume command and exits 130 / 143; Ctrl-C or SIGTERM
    anywhere else is one line and 130 / 143 as well. With ``MMALI_VERBOSE=1`` the traceback is printed first (for
    bug reports).
    """

    def guarded(argv):
        if len(argv) > 1:
            print(f"error: unexpected positional arguments {argv[1:]}", file=sys.stderr)
            sys.exit(2)
        with _STOP_SIGNALS.installed():
            try:
                failure = _failure_of(main, argv)
            except BaseException:
                if _STOP_SIGNALS.pending is None:
                    raise
                failure = None  # what TensorFlow made of a stop signal's exception
            stopped = _STOP_SIGNALS.disarm()
        if stopped is not None:  # a stop signal, whatever became of its exception
            failure = STOPS[stopped][::-1]
        if failure is not None:
            # The failed command's objects are gone now; finalize the rest before the last line (TensorFlow logs
            # when it finalizes a dataset iterator at interpreter exit, which would bury the line).
            gc.collect()
            line, code = failure
            print(line, file=sys.stderr, flush=True)
            sys.exit(code)

    app.run(guarded, argv=argv, flags_parser=parse_flags_one_line)


def _failure_of(main, argv) -> tuple[str, int] | None:
    """Run ``main``: None if it returns, else the last line to print and the exit status (see :func:`run_main`)."""
    try:
        main(argv)
        return None
    except (MMALIError, flags.ValidationError, OSError) as exc:
        if verbose():
            traceback.print_exc()
        code = getattr(exc, "exit_code", None)
        if code is not None:  # stopped on a signal after saving (mmali_tf.training.Stopped)
            return f"{exc}; resume with: {command_line()}", code
        if isinstance(exc, OSError):  # permissions, a full disk, a path that is a file: the environment
            return f"error: {os_reason(exc)}", 1
        return f"error: {exc}", 2 if isinstance(exc, flags.ValidationError) else 1
    except KeyboardInterrupt:
        return STOPS[signal.SIGINT][::-1]
    except _Terminated:
        return STOPS[signal.SIGTERM][::-1]


def command_line() -> str:
    """The command this process runs, as a user would type it (``python -m <module> <args>``)."""
    module = sys.modules["__main__"].__spec__
    program = f"python -m {module.name}" if module is not None else sys.argv[0]
    return " ".join([program] + [shlex.quote(a) for a in sys.argv[1:]])
