"""Server flags from the environment, as etcd reads them (etcd's pkg/flags).

Job: turn ``ETCD_<FLAG>`` (and the alias ``RAFTKV_<FLAG>``) variables into command-line
flags before argparse sees them. etcd's rule names the variable: the flag's name
upper-cased, dashes to underscores (``--initial-cluster`` -> ``ETCD_INITIAL_CLUSTER``).

Invariants:

- a flag given on the command line wins over its variable; the variable is then ignored
  with a warning (etcd 3.6.16 refuses to start instead: "conflicting environment variable
  is shadowed by corresponding command-line flag"; raftkv keeps flag-over-env precedence
  so a manifest's flags can override an image's environment);
- ``RAFTKV_<FLAG>`` wins over ``ETCD_<FLAG>`` when both are set (a warning says so if they
  differ); an empty variable counts as unset, as in etcd;
- a variable's value is checked exactly as its flag's would be (type, choices), and a bad
  one is a :class:`EnvFlagError` worded as etcd's (``invalid value "abc" for
  ETCD_HEARTBEAT_INTERVAL: ...``), which the CLI turns into exit code 2 like a bad flag;
- an ``ETCD_*`` variable naming no flag is reported as etcd does ("unrecognized
  environment variable"); ``RAFTKV_*`` variables are not, since the project's tools use
  that prefix for their own settings.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

PREFIXES = ("RAFTKV", "ETCD")  # in precedence order
# read by etcd itself or by its tools, not flags: never "unrecognized"
NOT_FLAGS = frozenset({"ETCD_UNSUPPORTED_ARCH"})
_TRUE = {"1", "t", "true", "y", "yes", "on"}
_FALSE = {"0", "f", "false", "n", "no", "off"}


class EnvFlagError(ValueError):
    """A variable's value is not valid for its flag; the message names the variable."""


def env_name(prefix: str, flag: str) -> str:
    return f"{prefix}_{flag.upper().replace('-', '_')}"


@dataclass
class FromEnv:
    """The flags to put in front of the command line, and what to tell the operator."""

    args: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # flag -> variable it came from
    used: list[str] = field(default_factory=list)  # "ETCD_NAME=m3", for the info log
    warnings: list[str] = field(default_factory=list)


def _long_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    out: dict[str, argparse.Action] = {}
    for action in parser._actions:  # argparse offers no public accessor
        for opt in action.option_strings:
            if opt.startswith("--") and opt != "--help":
                out[opt[2:]] = action
    return out


def _given(argv: Sequence[str]) -> set[str]:
    out = set()
    for tok in argv:
        if tok == "--":
            break
        if tok.startswith("--"):
            out.add(tok[2:].partition("=")[0])
    return out


def _as_args(flag: str, action: argparse.Action, var: str, value: str) -> list[str]:
    if action.nargs == 0:  # a switch (store_true / store_false)
        v = value.strip().lower()
        if v not in _TRUE | _FALSE:
            raise EnvFlagError(f'invalid value "{value}" for {var}: parse error '
                               "(want true or false)")
        want = v in _TRUE
        return [f"--{flag}"] if want == (action.const is True) else []
    if action.type is not None and callable(action.type):
        try:
            action.type(value)
        except argparse.ArgumentTypeError as exc:
            raise EnvFlagError(f'invalid value "{value}" for {var}: {exc}') from None
        except (TypeError, ValueError):
            raise EnvFlagError(f'invalid value "{value}" for {var}: parse error') from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(str(c) for c in action.choices)
        raise EnvFlagError(f'invalid value "{value}" for {var}: invalid value '
                           f"(choose from {choices})")
    return [f"--{flag}={value}"]


def from_env(parser: argparse.ArgumentParser, argv: Sequence[str],
             environ: Mapping[str, str]) -> FromEnv:
    """The flags ``environ`` sets that ``argv`` does not; raises EnvFlagError."""
    options = _long_options(parser)
    given = _given(argv)
    out = FromEnv()
    known = set(NOT_FLAGS)
    for flag, action in options.items():
        names = [env_name(p, flag) for p in PREFIXES]
        known.update(names)
        set_vars = [(n, environ[n]) for n in names if environ.get(n)]
        if not set_vars:
            continue
        var, value = set_vars[0]
        if len(set_vars) > 1 and set_vars[1][1] != value:
            out.warnings.append(f"{var} overrides {set_vars[1][0]} (they differ)")
        if flag in given:
            out.warnings.append(
                f"ignoring environment variable {var}: the flag --{flag} is set on the "
                "command line (etcd 3.6 refuses this conflict; raftkv lets the flag win)")
            continue
        out.args.extend(_as_args(flag, action, var, value))
        out.sources[flag] = var
        out.used.append(f"{var}={value}")
    for name in sorted(environ):
        if name.startswith("ETCD_") and name not in known:
            out.warnings.append(f"unrecognized environment variable {name}={environ[name]}")
    return out


def name_source(message: str, sources: Mapping[str, str]) -> str:
    """A configuration error about a flag that came from a variable says so."""
    for flag, var in sources.items():
        if re.search(f"--{re.escape(flag)}(?![\\w-])", message):
            return f"{message} (set by {var})"
    return message
