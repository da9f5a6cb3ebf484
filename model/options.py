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
        return dataclasses.field(
            default_factory=functools.partial(list, default), metadata=metadata
        )
    return dataclasses.field(default=default, metadata=metadata)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:  # one line, exit 2 through script_main
        raise NegstanceError(f"{message} (see --help)")


class _Extend(argparse.Action):
    """``--key a b``, ``--key a,b`` and ``--key a --key b`` all give ``[a, b]``."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        items = [item for value in values for item in value.split(",") if item]
        setattr(namespace, self.dest, [*getattr(namespace, self.dest, []), *items])


def _kinds(cls: type) -> dict[str, tuple[Any, ...]]:
    """Each field's types: ``int | None`` → ``(int, NoneType)``; ``list[str]`` stays whole."""
    hints = typing.get_type_hints(cls)
    unions = (typing.Union, types.UnionType)
    return {
        name: typing.get_args(kind) if typing.get_origin(kind) in unions else (kind,)
        for name, kind in hints.items()
    }


def _convert(name: str, value: Any, kinds: tuple[Any, ...]) -> Any:
    """A command-line string or a YAML value as the field's type."""
    if list[str] in kinds and (isinstance(value, list) or str not in kinds or "," in value):
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list) and all(isinstance(item, str) for item in items):
            items = [item for item in items if item]
            return items[0] if str in kinds and len(items) == 1 else items  # str | list[str]
    elif value is None and type(None) in kinds:
        return None
    elif not isinstance(value, (list, dict)):
        text = str(value)
        for kind in (kind for kind in kinds if kind is not type(None)):
            if kind is bool and text.lower() in TRUE + FALSE:
                return text.lower() in TRUE
            if kind is not bool:
                try:
                    return kind(text)
                except ValueError:
                    pass
    wanted = " or ".join(
        getattr(kind, "__name__", str(kind)) for kind in kinds if kind is not type(None)
    )
    raise NegstanceError(f"{name} must be {wanted}, got {value!r}")


def _shown(default: Any) -> str:
    if isinstance(default, list):
        return ",".join(default) or "none"
    return {True: "true", False: "false", "": "''"}.get(default, str(default))


def _add_option(parser: argparse.ArgumentParser, item: Any, kinds: tuple[Any, ...]) -> None:
    meta, names = item.metadata, [f"--{item.name}", *filter(None, [item.metadata["short"]])]
    if names[0] in parser._option_string_actions:  # a name two classes share: the first wins
        return
    default = item.default
    if item.default_factory is not dataclasses.MISSING:
        default = item.default_factory()
    help_text = meta["help"]
    if default not in (dataclasses.MISSING, None):
        help_text += f" (default: {_shown(default)})"
    if meta["positional"]:
        parser.add_argument(item.name, nargs="*", action=_Extend, help=help_text)
    elif kinds == (bool,):
        parser.add_argument(
            *names, dest=item.name, action="store_const", const="true", help=help_text
        )
    else:
        many = {"nargs": "+", "action": _Extend} if list[str] in kinds else {}
        metavar = "{" + ",".join(meta["choices"]) + "}" if meta["choices"] else item.name.upper()
        parser.add_argument(*names, dest=item.name, metavar=metavar, help=help_text, **many)


def build_parser(
    classes: Sequence[type],
    prog: str | None = None,
    description: str = "",
    config_help: str = "",
    parser: argparse.ArgumentParser | None = None,
) -> argparse.ArgumentParser:
    """An argparse parser (or ``parser``, filled) for the fields of ``classes``: only the options
    given land in its result, so they can be laid over a YAML file's values."""
    parser = parser or _Parser(prog=prog, description=description, allow_abbrev=False)
    parser.argument_default = argparse.SUPPRESS
    if config_help:
        parser.add_argument("--config", metavar="FILE.yaml", help=config_help)
    for cls in classes:
        for item in dataclasses.fields(cls):
            _add_option(parser, item, _kinds(cls)[item.name])
    # Listed for --help; script_main acts on it and takes it out before parsing.
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return parser


def parse_command_line(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, Any]:
    """The options given in ``argv``, by name; an unknown one is named with the closest match."""
    flags = {action.option_strings[0] for action in parser._actions if action.const == "true"}
    explicit, rest = {}, []
    for argument in argv:  # argparse's flags take no value: --flag=false is read here
        name, equals, value = argument.partition("=")
        if equals and name in flags:
            explicit[name[2:]] = value
        else:
            rest.append(argument)
    given, unknown = parser.parse_known_args(rest)
    if unknown:
        if not unknown[0].startswith("-"):
            raise NegstanceError(f"unexpected argument {unknown[0]!r} (see --help)")
        name = unknown[0].split("=", 1)[0]
        close = difflib.get_close_matches(name, list(parser._option_string_actions), n=1)
        raise NegstanceError(
            f"unknown option {name}"
            + (f" (did you mean {close[0]}?)" if close else " (see --help)")
        )
    values = vars(given) | explicit
    values.pop("debug", None)
    return values


def build(cls: type[T], layers: Sequence[tuple[Mapping[str, Any], str]]) -> T:
    """``cls`` from its defaults, updated by each ``(values, source)`` layer in turn, checked."""
    kinds, values = _kinds(cls), {}
    for updates, source in layers:
        for name, value in updates.items():
            if name not in kinds:
                close = difflib.get_close_matches(str(name), list(kinds), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise NegstanceError(f"{source}: unknown key {name!r}{hint}")
            try:
                values[name] = _convert(name, value, kinds[name])
            except NegstanceError as error:
                raise NegstanceError(f"{source}: {error}") from None
    missing = [
        item
        for item in dataclasses.fields(cls)
        if item.default is dataclasses.MISSING
        and item.default_factory is dataclasses.MISSING
        and values.get(item.name) in (None, [])
    ]
    if missing:
        label = (
            missing[0].name.upper() if missing[0].metadata["positional"] else f"--{missing[0].name}"
        )
        raise NegstanceError(f"missing {label} (see --help)")
    instance = cls(**values)
    check_values(instance)
    return instance


def check_values(instance: Any) -> None:
    """The ``minimum`` and ``choices`` that the fields of ``instance`` declare."""
    for item in dataclasses.fields(instance):
        value, meta = getattr(instance, item.name), item.metadata
        if meta.get("minimum") is not None and value is not None and value < meta["minimum"]:
            raise NegstanceError(f"{item.name} must be at least {meta['minimum']}, got {value}")
        if meta.get("choices") and value not in meta["choices"]:
            raise NegstanceError(
                f"{item.name} must be one of {', '.join(meta['choices'])}, not {value!r}"
            )


def parse_options(
    cls: type[T], argv: Sequence[str] | None, prog: str | None = None, description: str = ""
) -> T:
    """``cls`` filled from ``argv`` (default: ``sys.argv[1:]``)."""
    parser = build_parser([cls], prog, description)
    given = parse_command_line(parser, sys.argv[1:] if argv is None else argv)
    return build(cls, [(given, "command line")])


def parse_subcommand(
    commands: Mapping[str, tuple[type, str]],
    argv: Sequence[str],
    prog: str | None = None,
    description: str = "",
) -> tuple[str, Any]:
    """``prog COMMAND [options]``: the command's name and its options, ``commands`` mapping each
    name to its options class and a one-line description (argparse subparsers)."""
    parser = _Parser(prog=prog, description=description, allow_abbrev=False)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (cls, summary) in commands.items():
        sub = subparsers.add_parser(name, help=summary, description=summary, allow_abbrev=False)
        build_parser([cls], parser=sub)
    argv = list(argv)
    # The command's own parser, so that an unknown option is matched against its options.
    if argv and argv[0] in commands:
        command = argv[0]
        given = parse_command_line(subparsers.choices[command], argv[1:])
    else:
        command = parse_command_line(parser, argv)["command"]  # --help, or an unknown command
        given = {}
    return command, build(commands[command][0], [(given, "command line")])


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
