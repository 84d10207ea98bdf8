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
from collections.abc import Callable, Mapping

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
            import tensorflow  # noqa: F401
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

from mmali_tf import checks  # noqa: E402
from mmali_tf import config as config_lib  # noqa: E402
from mmali_tf.config import ExperimentConfig, ModalitySpec  # noqa: E402
from mmali_tf.errors import ConfigError, MMALIError, os_reason  # noqa: E402

VERBOSE_ENV = "MMALI_VERBOSE"


# ---------------------------------------------------------------------------------------------------- parsing
def parse_modality(text: str) -> ModalitySpec:
    """``name:dataset:kind[:quarter_turns[:rec_weight]]``; later parts may also be ``field=value``."""
    parts = text.split(":")
    if len(parts) < 3 or not all(parts[:3]):
        raise ConfigError(f"modality {text!r} must be name:dataset:kind[:quarter_turns[:rec_weight]]")
    fields = {f.name: f for f in dataclasses.fields(ModalitySpec)}
    hints = typing.get_type_hints(ModalitySpec)
    values = dict(name=parts[0], dataset=parts[1], kind=parts[2])
    positional = [name for name in fields if name not in values]
    for i, part in enumerate(parts[3:]):
        key, sep, raw = part.partition("=")
        if not sep:
            if i >= len(positional):
                raise ConfigError(f"modality {text!r}: too many parts")
            key, raw = positional[i], part
        if key not in fields:
            raise ConfigError(f"modality {text!r}: unknown field {key!r} (fields: {', '.join(fields)})")
        values[key] = _parse_scalar(raw, hints[key], f"modality {text!r} field {key}")
    return ModalitySpec(**values)


def parse_extra_unpaired(entries) -> tuple[tuple[str, int], ...]:
    out = []
    for entry in entries:
        name, _, count = entry.partition(":")
        if not name or not count or not (count == "all" or count.isdigit()):
            raise ConfigError(f"extra_unpaired entry {entry!r} must be name:count or name:all")
        out.append((name, -1 if count == "all" else int(count)))
    return tuple(out)


def _parse_scalar(raw: str, kind, where: str):
    if typing.get_origin(kind) is tuple:  # e.g. MLP widths: 512/256/128
        try:
            return tuple(int(part) for part in raw.split("/") if part)
        except ValueError:
            raise ConfigError(f"{where}: {raw!r} is not a /-separated list of integers") from None
    optional = type(None) in typing.get_args(kind)
    base = next((a for a in typing.get_args(kind) if a is not type(None)), kind) if optional else kind
    if optional and raw.lower() in ("", "none", "auto"):
        return None
    try:
        if base is bool:
            if raw.lower() in ("true", "1", "yes"):
                return True
            if raw.lower() in ("false", "0", "no"):
                return False
            raise ValueError(f"{raw!r} is not a boolean")
        return base(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _parse_steps(items) -> tuple[int, ...]:
    try:
        return tuple(sorted({int(item) for item in items}))
    except ValueError:
        raise ConfigError(f"steps must be integers, got {list(items)}") from None


_LIST_PARSERS: dict[str, Callable] = {
    "model.modalities": lambda items: tuple(parse_modality(m) for m in items),
    "data.extra_unpaired": parse_extra_unpaired,
    "train.keep_steps": _parse_steps,
}


def _field_types() -> dict[str, tuple[object, dataclasses.Field]]:
    """Dotted path -> (type, field) of every setting."""
    out = {"name": (str, next(f for f in dataclasses.fields(ExperimentConfig) if f.name == "name"))}
    for section, cls in config_lib.SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in config_lib.settings(cls):
            out[f"{section}.{f.name}"] = (hints[f.name], f)
    return out


def apply_overrides(config: ExperimentConfig, overrides: Mapping[str, object]) -> ExperimentConfig:
    """``config`` with dotted settings replaced; values may be typed or command-line text (lists for tuples)."""
    types = _field_types()
    sections: dict[str, dict] = {}
    top = {}
    for path, value in overrides.items():
        if path not in types:
            raise ConfigError(f"unknown setting {path!r}")
        kind, _ = types[path]
        if path in _LIST_PARSERS and (isinstance(value, str) or (
                isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value))):
            try:
                value = _LIST_PARSERS[path]([value] if isinstance(value, str) else list(value)) if value else ()
            except ConfigError as exc:
                raise ConfigError(f"setting {path}: {exc}") from None
        elif isinstance(value, str) and kind is not str:
            value = _parse_scalar(value, kind, f"setting {path}")
        if "." in path:
            section, key = path.split(".", 1)
            sections.setdefault(section, {})[key] = value
        else:
            top[path] = value
    return config.replace(**sections, **top)


# ---------------------------------------------------------------------------------------------------- flags
def flag_name(path: str) -> str:
    return f"config.{path}"


def define_config_flags() -> None:
    """``--config``, ``--dry_run`` and one flag per setting (with its short-name aliases); defined once."""
    if "config" in flags.FLAGS:
        return
    flags.DEFINE_string("config", "defaults", "Preset name (" + ", ".join(_preset_names()) + ") or a .py file "
                        "defining get_config(); settings flags override it.")
    flags.DEFINE_bool("dry_run", False, "Print the resolved config and exit.")
    from mmali_tf import kinds

    flags.DEFINE_multi_string("modality_option", [], kinds.modality_option_help())
    for path, (kind, f) in _field_types().items():
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        text = f"{f.metadata['help']}{_registry_help(path)} (default: {_show(default)})"
        base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
        name = flag_name(path)
        if path in _LIST_PARSERS:
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
        for alias in (short,) + tuple(f.metadata["aliases"]):
            flags.DEFINE_alias(alias, name)


def _registry_help(path: str) -> str:
    """The registered choices of a setting whose values are registry names (read when the flags are defined)."""
    if path == "model.modalities":
        from mmali_tf import kinds
        from mmali_tf.data.datasets import DATASETS

        return f" Datasets: {DATASETS.help_text()}; kinds (networks): {kinds.KINDS.help_text()}."
    if path == "model.joint_architecture":
        from mmali_tf.networks.registry import JOINT_ARCHITECTURE_REGISTRY

        return f" Registered: {JOINT_ARCHITECTURE_REGISTRY.help_text()}."
    return ""


def _preset_names():
    from mmali_tf.configs import PRESETS

    return list(PRESETS)


def _show(value) -> str:
    if isinstance(value, tuple) and value and isinstance(value[0], ModalitySpec):
        return ",".join(f"{m.name}:{m.dataset}:{m.kind}" for m in value)
    return "auto" if value is None else str(value)


def config_from_flags(flag_values=None) -> ExperimentConfig:
    """The preset of ``--config`` with every config flag that was given (command line or flagfile) applied,
    validated and its registry names checked (:func:`mmali_tf.checks.check_registered`)."""
    from mmali_tf import configs

    from mmali_tf import kinds

    values = flag_values or flags.FLAGS
    overrides = {path: values[flag_name(path)].value for path in _field_types() if values[flag_name(path)].present}
    config = configs.get(values.config)
    config = apply_overrides(config, overrides)
    if values.modality_option:
        modalities = kinds.apply_modality_options(config.model.modalities, values.modality_option)
        config = config.replace(model=dict(modalities=tuple(modalities)))
    return checks.check_registered(config.validate())


def resolved_config_from_flags() -> ExperimentConfig:
    """:func:`config_from_flags` with its "auto" execution settings resolved for this machine
    (``mmali_tf.distribution.resolve``), as training runs it. With ``--dry_run`` it is printed and the program ends
    (exit status 0)."""
    from mmali_tf import distribution

    config = distribution.resolve(config_from_flags())
    exit_if_dry_run(config)
    return config


def exit_if_dry_run(config: ExperimentConfig) -> None:
    """With ``--dry_run``: print ``config`` with its "auto" settings resolved for this machine and end (status 0)."""
    from mmali_tf import distribution

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
