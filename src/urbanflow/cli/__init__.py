"""The `urbanflow` command: parse options, call the library, print with Rich. No logic here."""

from __future__ import annotations

import sys

import typer

from urbanflow.cli import benchmark, datasets, demo, evaluate, rebalance, serve, train
from urbanflow.cli.allocator import fix_mmap_threshold
from urbanflow.cli.common import errors
from urbanflow.errors import UrbanflowError

app = typer.Typer(
    help="Forecasts for the flows a city's sensors measure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(datasets.app, name="datasets")
for module in (evaluate, train, benchmark, serve, demo, rebalance):
    module.register(app)


@app.callback()
def main_options(
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of errors."),
) -> None:
    """urbanflow: datasets, honest evaluation, baselines and graph models."""


def main(args: list[str] | None = None) -> None:
    """Entry point: user errors print one line and exit 2; ``--debug`` shows the traceback."""
    args = sys.argv[1:] if args is None else args
    fix_mmap_threshold()  # freed tensors go back to the system (cli/allocator.py)
    try:
        app(args=args, prog_name="urbanflow")
    except UrbanflowError as error:
        if "--debug" in args:
            raise
        errors.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
