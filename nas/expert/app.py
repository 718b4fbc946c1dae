"""The ``hwnas expert`` command group; the commands register themselves in their modules."""

from __future__ import annotations

import typer

expert_app = typer.Typer(
    help="Expert in the loop: explain an architecture's cost and what each edit would change, "
         "mine rules from finished searches in MLflow, apply rules to a new model.",
    no_args_is_help=True)
