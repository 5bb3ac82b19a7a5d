"""Running the ``urbanflow`` command in a test: its exit code and what it printed."""

from __future__ import annotations

import pytest

from urbanflow.cli import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | str | None, str, str]:
    """``(exit code, stdout, stderr)`` of ``urbanflow ARGS`` (the command always exits)."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err
