"""The options of every script, from dataclass fields: defaults < a YAML file < ``--key value``.

Plain argparse rather than transformers' ``HfArgumentParser``: importing transformers takes
over a second, and ``--help`` and usage errors must answer before it (or torch) loads.

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
import dataclasses
import difflib
import functools
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from negstance.model.errors import NegstanceError

T = TypeVar("T")
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
DEBUG_HELP = "show the full traceback of an error"


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
    """A dataclass field that is also a command-line option and a YAML key. No default makes
    it required; ``run_only`` marks a key that does not change trained weights."""
    metadata = {"help": help, "run_only": run_only, "minimum": minimum, "choices": choices}
    metadata |= {"positional": positional, "short": short}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # one line, exit 2 through script_main
        raise NegstanceError(f"{message} (see --help)")


def _kinds(cls: type) -> dict[str, tuple[Any, ...]]:
    """Each field's types: ``int | None`` → ``(int, NoneType)``; ``list[str]`` stays whole."""
    unions = (typing.Union, types.UnionType)
    hints = typing.get_type_hints(cls).items()
    return {n: typing.get_args(k) if typing.get_origin(k) in unions else (k,) for n, k in hints}


def _convert(name: str, value: Any, kinds: tuple[Any, ...]) -> Any:
    """A command-line string (or list of them) or a YAML value as the field's type."""
    if list[str] in kinds and isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)  # --key a b, --key a,b and --key a --key b are one list
    if list[str] in kinds and isinstance(value, str) and ("," in value or str not in kinds):
        return [item for item in value.split(",") if item]
    if value is None and type(None) in kinds:
        return None
    for kind in (kind for kind in kinds if kind not in (type(None), list[str])):
        if kind is bool and str(value).lower() in TRUE + FALSE:
            return str(value).lower() in TRUE
        if kind is not bool and not isinstance(value, (list, dict)):
            try:
                return kind(str(value))
            except ValueError:
                continue
    wanted = " or ".join(getattr(kind, "__name__", str(kind)) for kind in kinds)
    raise NegstanceError(f"{name} must be {wanted.replace(' or NoneType', '')}, got {value!r}")


def _closest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]}?)" if close else " (see --help)"


def _add_option(parser: argparse.ArgumentParser, item: Any, kinds: tuple[Any, ...]) -> None:
    meta, names = item.metadata, [f"--{item.name}", *filter(None, [item.metadata["short"]])]
    if names[0] in parser._option_string_actions:  # a name two classes share: the first wins
        return
    default = item.default
    if item.default_factory is not dataclasses.MISSING:
        default = ",".join(item.default_factory()) or "none"
    help_text = meta["help"]
    if default not in (dataclasses.MISSING, None):
        shown = str(default).lower() if isinstance(default, bool) else default
        help_text += f" (default: {shown!r})" if default == "" else f" (default: {shown})"
    if meta["positional"]:
        parser.add_argument(item.name, nargs="*", action="extend", help=help_text)
    elif kinds == (bool,):  # --flag; --flag=false is read by parse_command_line
        parser.add_argument(
            *names, dest=item.name, action="store_const", const="true", help=help_text
        )
    else:
        many = {"nargs": "+", "action": "extend"} if list[str] in kinds else {}
        metavar = "{" + ",".join(meta["choices"]) + "}" if meta["choices"] else item.name.upper()
        parser.add_argument(*names, dest=item.name, metavar=metavar, help=help_text, **many)


def build_parser(
    classes: Sequence[type],
    prog: str | None = None,
    description: str = "",
    config_help: str = "",
    parser: argparse.ArgumentParser | None = None,
) -> argparse.ArgumentParser:
    """An argparse parser (or ``parser``, filled) for the fields of ``classes``; only the options
    given land in its result, so that they can be laid over a YAML file's values."""
    parser = parser or _Parser(prog=prog, description=description, allow_abbrev=False)
    parser.argument_default = argparse.SUPPRESS
    if config_help:
        parser.add_argument("--config", metavar="FILE.yaml", help=config_help)
    for cls in classes:
        for item in dataclasses.fields(cls):
            _add_option(parser, item, _kinds(cls)[item.name])
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)  # script_main acts on it
    return parser


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, Any]:
    """The options given in ``argv``, by name; an unknown one is named with the closest match."""
    flags = {action.option_strings[0] for action in parser._actions if action.const == "true"}
    is_flag = [argument.partition("=")[0] in flags and "=" in argument for argument in argv]
    explicit = dict(a[2:].split("=", 1) for a, flag in zip(argv, is_flag, strict=True) if flag)
    rest = [argument for argument, flag in zip(argv, is_flag, strict=True) if not flag]
    given, unknown = parser.parse_known_args(rest)
    if unknown and not unknown[0].startswith("-"):
        raise NegstanceError(f"unexpected argument {unknown[0]!r} (see --help)")
    if unknown:
        name = unknown[0].split("=", 1)[0]
        raise NegstanceError(
            f"unknown option {name}{_closest(name, parser._option_string_actions)}"
        )
    return {key: value for key, value in (vars(given) | explicit).items() if key != "debug"}


def build(cls: type[T], layers: Sequence[tuple[Mapping[str, Any], str]]) -> T:
    """``cls`` from its defaults, updated by each ``(values, source)`` layer in turn, checked."""
    kinds, values = _kinds(cls), {}
    for updates, source in layers:
        for name, value in updates.items():
            if name not in kinds:
                raise NegstanceError(f"{source}: unknown key {name!r}{_closest(name, list(kinds))}")
            try:
                values[name] = _convert(name, value, kinds[name])
            except NegstanceError as error:
                raise NegstanceError(f"{source}: {error}") from None
    for item in dataclasses.fields(cls):
        required = item.default is item.default_factory is dataclasses.MISSING
        if required and values.get(item.name) in (None, []):
            name = item.name.upper() if item.metadata["positional"] else f"--{item.name}"
            raise NegstanceError(f"missing {name} (see --help)")
    instance = cls(**values)
    check_values(instance)
    return instance


def check_values(instance: Any) -> None:
    """The ``minimum`` and ``choices`` that the fields of ``instance`` declare."""
    for item in dataclasses.fields(instance):
        value, minimum, choices = (
            getattr(instance, item.name),
            *(item.metadata.get(key) for key in ("minimum", "choices")),
        )
        if minimum is not None and value is not None and value < minimum:
            raise NegstanceError(f"{item.name} must be at least {minimum}, got {value}")
        if choices and value is not None and value not in choices:
            raise NegstanceError(f"{item.name} must be one of {', '.join(choices)}, not {value!r}")


def parse_options(
    cls: type[T], argv: Sequence[str] | None, prog: str | None = None, description: str = ""
) -> T:
    """``cls`` filled from ``argv`` (default: ``sys.argv[1:]``)."""
    argv = sys.argv[1:] if argv is None else argv
    given = parse_command_line(build_parser([cls], prog, description), argv)
    return build(cls, [(given, "command line")])


def parse_subcommand(
    commands: Mapping[str, tuple[type, str]], argv: Sequence[str], description: str = ""
) -> tuple[str, Any]:
    """``prog COMMAND [options]``: the command's name and its options; ``commands`` maps each
    name to its options class and a one-line summary (argparse subparsers, for ``--help``)."""
    parser = _Parser(description=description, allow_abbrev=False)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (cls, summary) in commands.items():
        build_parser([cls], parser=subparsers.add_parser(name, help=summary, description=summary))
    if not argv or argv[0] not in commands:  # --help, or a missing or unknown command
        parse_command_line(parser, argv)
    # The command's own parser, so that an unknown option is matched against its options.
    given = parse_command_line(subparsers.choices[argv[0]], argv[1:])
    return argv[0], build(commands[argv[0]][0], [(given, "command line")])


def script_main(main: Any) -> Any:
    """Run a script's ``main``: a ``NegstanceError`` is ``error: <message>`` on stderr, exit 2;
    Ctrl-C is exit 130. ``--debug`` anywhere in argv keeps the traceback, for bug reports."""

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        arguments = list(sys.argv[1:] if argv is None else argv)
        debug = "--debug" in arguments
        try:
            return main([argument for argument in arguments if argument != "--debug"])
        except (NegstanceError, KeyboardInterrupt) as error:
            if debug:
                raise
            interrupted = isinstance(error, KeyboardInterrupt)
            print(f"error: {error}" if not interrupted else "interrupted", file=sys.stderr)
            return 130 if interrupted else 2

    return wrapper
