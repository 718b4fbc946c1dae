"""What every command module shares: the consoles, strict JSON output, the option types, and the
two kinds of error the entry point tells apart.

:class:`UsageError` is bad input: ``hwnas`` prints it as one line and exits 2. Library functions
signal bad input with a one-line ``ValueError`` (the house style), but so could a bug deep inside a
run; :func:`user_input` marks the places where the CLI parses or loads what the user gave, and
only a ``ValueError`` raised there becomes a :class:`UsageError`. Anything else reaching
:func:`nas.cli.main` is a bug.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console

from estimators import strict_json
from searchspaces.baselines import BASELINES, resolve_arch
from searchspaces.genome import DEFAULT_NUM_CLASSES, Architecture
from searchspaces.spaces import SearchSpace, get_space

# Pipes and logs (make demo, CI) are not limited to 80 columns the way rich assumes.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True)


class UsageError(Exception):
    """Bad input from the user: printed as ``hwnas: error: <message>``, exit status 2."""


def one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def user_input() -> Iterator[None]:
    """Where the CLI parses, loads or validates what the user gave (an architecture string, a
    config, a profile, an estimator, a rules file, a data source): a ``ValueError`` (pydantic's
    ``ValidationError`` is one), ``KeyError`` or missing/unreadable file raised in the block is
    bad input and becomes a one-line :class:`UsageError`. Outside such blocks it is a bug."""
    try:
        yield
    except (ValueError, KeyError, FileNotFoundError, PermissionError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else one_line(exc)
        raise UsageError(str(message)) from exc


def emit_json(obj: Any) -> None:
    """Print ``obj`` as one strict JSON document on stdout: non-finite floats become ``null``."""
    sys.stdout.write(strict_json.dumps(obj) + "\n")


def si(n: int) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.2f}{suffix}"
    return str(n)


def mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def progress_bar(label: str) -> Any:
    """A rich progress bar on stderr, shown on a terminal (or with ``HWNAS_PROGRESS=1``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=False,
                    disable=not err.is_terminal and os.environ.get("HWNAS_PROGRESS") != "1")


def user_space(name: str, parallelism_factor: int, curated: bool, head: str = "head"
               ) -> SearchSpace:
    """The named space, its candidates ending in a ``head`` head (bad names are bad input)."""
    with user_input():
        return get_space(name, parallelism_factor=parallelism_factor, curated=curated, head=head)


def user_arch(text: str, space_name: str | None = None, parallelism_factor: int = 8,
         curated: bool = True) -> Architecture:
    """An architecture string or baseline name, checked to lie in ``space_name`` if given."""
    with user_input():
        a = resolve_arch(text)
        if space_name is not None:
            get_space(space_name, parallelism_factor, curated, a.head_kind).validate(a)
    return a


def classes_for(a: Architecture, given: int | None) -> int:
    """``--num-classes`` if given, else the default of ``a``'s head
    (:data:`~searchspaces.genome.DEFAULT_NUM_CLASSES`)."""
    return given if given is not None else DEFAULT_NUM_CLASSES[a.head_kind]


def user_estimator(ref: str) -> tuple[Any, str]:
    """The loaded estimator ``ref`` names (a folder or a shipped name) and its label."""
    from estimators.latency import load_estimator

    with user_input():
        return load_estimator(ref)


def note_outside(a: Architecture, space_name: str, parallelism_factor: int,
                 what: str = "the architecture") -> None:
    """A note on stderr when ``a`` lies outside the estimator's space (curated or not): the
    estimate then extrapolates."""
    if not any(get_space(space_name, parallelism_factor, c, a.head_kind).contains(a)
               for c in (True, False)):
        err.print(f"note: {what} lies outside space {space_name}; the estimate extrapolates",
                  highlight=False)


# -- shared options ---------------------------------------------------------------------------
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document and nothing else.")]
PFactorOpt = Annotated[int, typer.Option(
    "--parallelism-factor", "-p", min=1,
    help="Hardware parallelism factor P (PE-array width); curated channels are multiples of P.")]
CuratedOpt = Annotated[bool, typer.Option(
    "--curated/--uncurated",
    help="Curated: channels are multiples of P. Uncurated: channels step by 1.")]
HeadOpt = Annotated[str, typer.Option(
    "--head", help="The task head candidates end in: head (a classifier), det (CenterNet "
    "detection, 1 or 2 output scales) or seg (LR-ASPP segmentation, searchable skip stride).")]
ArchArg = Annotated[str, typer.Argument(
    help="An architecture string (docs/architecture-strings.md) or a baseline: "
         f"{', '.join(BASELINES)}.")]
NumClassesOpt = Annotated[int | None, typer.Option(
    "--num-classes", min=1, show_default=False,
    help="Classes the head predicts (default: 1000 for a classifier, 80 for a detector, 21 for "
         "a segmenter: ImageNet, COCO, VOC).")]
InChannelsOpt = Annotated[int, typer.Option("--in-channels", min=1, help="Input image channels.")]
EstimatorOpt = Annotated[str, typer.Option(
    "--estimator", "-e", help="Estimator folder, or the name of a shipped one (see "
    "'hwnas estimator list').")]
TrackingUriOpt = Annotated[str | None, typer.Option(
    "--tracking-uri", help="MLflow tracking URI (default: the config's).")]
AddressOpt = Annotated[str | None, typer.Option(help="Ray cluster address.")]
