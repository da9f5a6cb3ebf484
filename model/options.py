"""The options of every script, from dataclass fields: defaults < a YAML file < ``--key=value``.

A script declares its options as dataclass fields made with :func:`option` (type,
default, one-line help); every mistake is a one-line ``NegstanceError``. Nothing
here imports torch, so ``--help`` and usage errors answer at once.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Options:
    ...     input: str = option(help="input file")
    ...     batch_size: int = option(32, help="sentences per batch", minimum=1)
    ...     overwrite: bool = option(False, help="replace an existing output")
    >>> parse_options(Options, ["--input", "a.txt", "--batch_size=8", "--overwrite"], prog="x")
    Options(input='a.txt', batch_size=8, overwrite=True)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import functools
import os
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from negstance.model.errors import NegstanceError

T = TypeVar("T")
# Fields that take several values: `--key a b`, `--key a,b` or `--key a --key b`.
LISTS = (list[str], str | list[str])


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    run_only: bool = False,
    minimum: float | None = None,
    choices: Sequence[str] | None = None,
    positional: bool = False,
    short: str | None = None,
) -> Any:
    """A dataclass field that is also a command-line option (and a YAML key).

    ``run_only``: the value does not change the trained weights (paths, progress
    bars), so :func:`negstance.train.config.config_diff` ignores it. No default
    makes the option required; a list default is copied for every instance.
    """
    metadata = {
        "help": help,
        "run_only": run_only,
        "minimum": minimum,
        "choices": tuple(choices) if choices else None,
        "positional": positional,
        "short": short,
    }
    if isinstance(default, list):
        copy = functools.partial(list, default)
        return dataclasses.field(default_factory=copy, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class OptionParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other user error."""

    def error(self, message: str) -> typing.NoReturn:
        option, _, problem = message.removeprefix("argument ").partition(": ")
        if problem == "expected one argument":
            raise NegstanceError(f"{option} needs a value: {option}=VALUE")
        raise NegstanceError(f"{message} (see --help)")


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return repr(value) if value == "" else str(value)


def add_options(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """One argument per field of ``cls`` but ``skip``, with its help and default (an earlier
    class's field of the same name wins)."""
    types_by_name = field_types(cls)
    for item in dataclasses.fields(cls):
        if item.name in skip or f"--{item.name}" in parser._option_string_actions:
            continue
        meta = item.metadata
        help_text = meta.get("help", "")
        default = (
            item.default_factory()
            if item.default_factory is not dataclasses.MISSING
            else item.default
        )
        required = default is dataclasses.MISSING
        if default is True:
            help_text += f" (default: true; --{item.name}=false turns it off)"
        elif not required and default is not None and not meta.get("positional"):
            help_text += f" (default: {_shown(default)})"
        if meta.get("positional"):
            parser.add_argument(item.name, nargs="+", metavar=item.name.upper(), help=help_text)
            continue
        names = [f"--{item.name}", *([meta["short"]] if meta.get("short") else [])]
        if types_by_name[item.name] is bool:  # --flag=false is taken out before argparse
            parser.add_argument(*names, action="store_true", dest=item.name, help=help_text)
            continue
        choices = meta.get("choices")
        metavar = "{" + ",".join(choices) + "}" if choices else item.name.upper()
        many = {"nargs": "+", "action": "extend"} if types_by_name[item.name] in LISTS else {}
        parser.add_argument(
            *names, dest=item.name, required=required, metavar=metavar, help=help_text, **many
        )


def parse_command_line(
    classes: Sequence[type],
    argv: Sequence[str],
    prog: str | None = None,
    description: str = "",
    config_file: str = "",
    skip: Sequence[str] = (),
) -> tuple[dict[str, Any], str | None]:
    """The options given on the command line (raw strings; bools True) and the ``--config`` path.

    ``config_file``: the help of a ``--config FILE.yaml`` option ("" for none); ``skip``:
    fields of ``classes`` that this command does not take.
    """
    flags = {name for cls in classes for name, kind in field_types(cls).items() if kind is bool}
    rest, explicit = [], {}
    for argument in argv:
        name, equals, value = argument.removeprefix("--").partition("=")
        if argument.startswith("--") and equals and name in flags:
            explicit[name] = value  # --flag=false: converted like any other value
        else:
            rest.append(argument)
    # By default the name it was run as: predict.py, or the console command negstance-predict.
    prog = prog or Path(sys.argv[0]).name
    parser = OptionParser(
        prog=prog,
        # The generated usage would list every training key twice over.
        usage=f"{prog} [--config FILE.yaml] [--key VALUE ...]" if config_file else None,
        description=description,
        argument_default=argparse.SUPPRESS,  # only what was given: YAML values are not reset
        allow_abbrev=False,  # else --seed would silently mean --seeds
    )
    if config_file:
        parser.add_argument("--config", metavar="FILE.yaml", help=config_file)
    for cls in classes:
        add_options(parser, cls, skip)
    debug_help = "show the full traceback of an error (for bug reports)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    namespace, unknown = parser.parse_known_args(rest)
    if unknown:
        raise unknown_option_error(unknown[0], parser)
    given = vars(namespace) | explicit
    given.pop("debug", None)
    return given, given.pop("config", None)


def unknown_option_error(argument: str, parser: argparse.ArgumentParser) -> NegstanceError:
    if not argument.startswith("-"):
        return NegstanceError(f"expected --key=value, got {argument!r}")
    name = argument.split("=", 1)[0]
    known = [
        name
        for action in parser._actions
        for name in action.option_strings
        if name not in ("-h", "--help")
    ]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else " (see --help)"
    return NegstanceError(f"unknown option {name}{hint}")


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML mapping, or a one-line error naming the file (and the line)."""
    location = Path(path)
    if location.is_dir():
        yaml_files = sorted(location.glob("*.yaml"))
        example = f" (e.g. {yaml_files[0]})" if yaml_files else ""
        raise NegstanceError(f"config is a directory, not a YAML file: {location}{example}")
    if not location.is_file():
        raise NegstanceError(f"config file not found: {location}")
    try:
        loaded = yaml.safe_load(location.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None)
        raise NegstanceError(
            f"{location}{where}: not valid YAML" + (f" ({problem})" if problem else "")
        ) from None
    except UnicodeDecodeError:
        raise NegstanceError(f"{location}: not UTF-8 text") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise NegstanceError(f"{location}: expected a mapping of config keys")
    return loaded


def unknown_key_error(name: str, cls: type, source: str) -> NegstanceError:
    """``source: unknown key 'x' (did you mean 'y'?)``, or the list of known keys."""
    known = list(field_types(cls))
    close = difflib.get_close_matches(str(name), known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
    return NegstanceError(f"{source}: unknown key {name!r} ({hint})")


def convert(name: str, value: Any, expected: Any, source: str) -> Any:
    """``value`` as the field's type; command-line strings are read as YAML scalars first."""
    alternatives = _alternatives(expected)
    strings = isinstance(value, list) and all(isinstance(item, str) for item in value)
    if source == "command line" and strings and list[str] in alternatives:
        value = ",".join(value)  # --labelled a.jsonl b.jsonl, or --labelled a.jsonl,b.jsonl
    textual = str in alternatives or list[str] in alternatives
    if source == "command line" and isinstance(value, str) and not textual:
        # Paths, names and document ids stay verbatim: YAML would read "2025" or "001"
        # as numbers and "on" as a boolean.
        with contextlib.suppress(yaml.YAMLError):
            value = yaml.safe_load(value) if value else ""
    return _check_type(name, value, expected, source)


def _alternatives(expected: Any) -> tuple[Any, ...]:
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        return typing.get_args(expected)
    return (expected,)


def _type_name(expected: Any) -> str:
    names = [
        getattr(kind, "__name__", str(kind)) if typing.get_origin(kind) is None else str(kind)
        for kind in _alternatives(expected)
        if kind is not type(None)
    ]
    return " | ".join(names)


def _check_type(name: str, value: Any, expected: Any, source: str) -> Any:
    alternatives = _alternatives(expected)
    if isinstance(value, str) and list[str] in alternatives and ("," in value or not value):
        value = [item for item in value.split(",") if item]  # a,b.jsonl; "" is no item
    for kind in alternatives:
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is float and isinstance(value, str):  # YAML 1.1 reads "5e-5" as a string
            with contextlib.suppress(ValueError):
                return float(value)
        if kind is str and isinstance(value, str):
            return value
        if kind is type(None) and value is None:
            return None
        if kind == list[str] and isinstance(value, str):
            return [value]
        if kind == list[str] and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
    raise NegstanceError(
        f"{source}: {name} must be {_type_name(expected)}, got {type(value).__name__} {value!r}"
    )


def check_values(instance: Any, source: str) -> None:
    """The ``minimum`` and ``choices`` that the fields of ``instance`` declare."""
    for item in dataclasses.fields(instance):
        value, meta = getattr(instance, item.name), item.metadata
        if value is None:
            continue
        if meta.get("minimum") is not None and value < meta["minimum"]:
            minimum = meta["minimum"]
            raise NegstanceError(f"{source}: {item.name} must be at least {minimum}, got {value}")
        if meta.get("choices") and value not in meta["choices"]:
            raise NegstanceError(
                f"{source}: {item.name} must be one of {', '.join(meta['choices'])}, not {value!r}"
            )


def resolve(cls: type[T], layers: Sequence[tuple[Mapping[str, Any], str]]) -> T:
    """``cls`` from its defaults updated by each ``(values, source)`` layer in turn."""
    types_by_name = field_types(cls)
    values: dict[str, Any] = {}
    for updates, source in layers:
        for name, value in updates.items():
            if name not in types_by_name:
                raise unknown_key_error(name, cls, source)
            values[name] = convert(name, value, types_by_name[name], source)
    instance = cls(**values)
    if not hasattr(instance, "validate"):  # a class with its own checks runs them itself
        check_values(instance, "command line")
    return instance


def parse_options(
    cls: type[T], argv: Sequence[str] | None, prog: str | None = None, description: str = ""
) -> T:
    """``cls`` filled from ``argv`` (default: ``sys.argv[1:]``)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    given, _ = parse_command_line([cls], arguments, prog, description)
    return resolve(cls, [(given, "command line")])


def script_main(main: Any = None, *, interrupted: str = "") -> Any:
    """Run a script's ``main``: a ``NegstanceError`` is ``error: <message>`` on stderr, exit 2;
    Ctrl-C is ``interrupted`` (with the ``interrupted`` hint, if any), exit 130.

    ``--debug`` anywhere in argv keeps the traceback, for bug reports. Use as
    ``@script_main`` or ``@script_main(interrupted="what was kept")``.
    """
    if main is None:
        return functools.partial(script_main, interrupted=interrupted)

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        arguments = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in arguments
        try:
            return main([argument for argument in arguments if argument != "--debug"])
        except NegstanceError as error:
            if debug:
                raise
            print(f"error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            if debug:
                raise
            print("interrupted" + (f": {interrupted}" if interrupted else ""), file=sys.stderr)
            return 130

    return wrapper
