"""The ``hwnas`` command line.

Every command has ``--help``; ``--json`` prints exactly one JSON document on stdout and nothing
else. Bad input (unknown space, malformed architecture string, an architecture outside the space,
a bad config, profile or estimator) prints one line ``hwnas: error: ...`` on stderr and exits with
status 2, writing nothing. Any other exception is a bug: one line saying so and exit status 1, or
the whole traceback with ``hwnas --debug``.

One module per command group; :mod:`nas.cli._common` holds what they share. The library
(``searchspaces``, ``estimators``, ``nas``) never imports this package.
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from nas.cli import arch, compare, estimator, expert, latency, search, space, train
from nas.cli._common import UsageError, one_line
from nas.config import ClusterError

app = typer.Typer(
    name="hwnas",
    help="Hardware-aware neural-architecture search: spaces, architectures, estimators, search.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(space.app, name="space")
app.add_typer(arch.app, name="arch")
app.add_typer(estimator.app, name="estimator")
app.command("latency")(latency.latency)
app.command("search")(search.search)
app.command("train")(train.train)
app.command("export")(arch.arch_export)
app.command("compare")(compare.compare)
app.command("ablation")(compare.ablation)
app.add_typer(expert.app, name="expert")

_debug = False


@app.callback()
def _options(debug: Annotated[bool, typer.Option(
        "--debug", help="On an internal error, print the whole traceback.")] = False) -> None:
    global _debug
    _debug = debug


def main(argv: list[str] | None = None) -> int:
    """Run the CLI: bad input is one line on stderr and exit status 2; a bug is one line (the
    traceback too with ``--debug``) and exit status 1."""
    global _debug
    _debug = False
    try:
        result = app(args=argv, prog_name="hwnas", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("hwnas: aborted\n")
        return 130
    except typer.TyperException as exc:  # usage errors (bad option values, missing arguments)
        fmt = getattr(exc, "format_message", None)
        message = " ".join((fmt() if fmt else str(exc)).split())
        sys.stderr.write(f"hwnas: error: {message} (see --help)\n")
        return int(getattr(exc, "exit_code", 2))
    except (UsageError, ClusterError) as exc:
        sys.stderr.write(f"hwnas: error: {exc}\n")
        return 2
    except Exception as exc:  # noqa: BLE001 - the last resort: a bug, said so
        if _debug:
            traceback.print_exc()
        sys.stderr.write(f"hwnas: internal error (a bug, please report it): "
                         f"{type(exc).__name__}: {one_line(exc)}"
                         f"{'' if _debug else ' (rerun with hwnas --debug for the traceback)'}\n")
        return 1
    return result if isinstance(result, int) else 0
