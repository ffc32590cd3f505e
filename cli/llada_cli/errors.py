"""Every failure becomes one line on stderr and an exit code; a traceback only with ``--debug``.

Exit codes: 0 success, 1 runtime error (checkpoint, tokenizer, missing extra, I/O...), 2 usage error
(bad option value, unknown option, invalid option combination, unknown model path, bad argument),
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

OK, RUNTIME, USAGE, INTERRUPTED = 0, 1, 2, 130


class _State:
    debug = False


STATE = _State()


def set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """Callback of the global ``--debug`` flag."""
    STATE.debug = bool(value)
    return value


def one_line(text: str) -> str:
    """Collapse whitespace runs (newlines included) so a message fits on one line."""
    return " ".join(text.split())


def classify(exc: BaseException) -> tuple[int, str]:
    """``(exit code, one-line message)`` for an exception that ended a command."""
    from pydantic import ValidationError

    from llada_sdk._deps import exception_chain
    from llada_sdk.errors import LLaDAError, ModelNotFoundError, TokenizerError

    # a Ctrl-C that library code turned into another exception (an import failing half-way) is still one
    if any(isinstance(e, (click.exceptions.Abort, KeyboardInterrupt)) for e in exception_chain(exc)):
        return INTERRUPTED, "interrupted"
    if isinstance(exc, click.ClickException):
        message = exc.format_message()
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            message += f" (see '{exc.ctx.command_path} --help')"
        return exc.exit_code, message
    if isinstance(exc, ModelNotFoundError):
        return USAGE, f"Invalid value for '--model': {exc}"
    if isinstance(exc, TokenizerError) and "generate()" in str(exc):
        return RUNTIME, f"{exc} (on the command line: llada generate --ids)"
    if isinstance(exc, LLaDAError):
        return RUNTIME, str(exc)
    if isinstance(exc, ValidationError):
        from llada_cli.genopts import describe_validation_error

        return USAGE, f"invalid option combination: {describe_validation_error(exc)}"
    if isinstance(exc, ValueError):
        return USAGE, str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return RUNTIME, f"{exc.strerror}{where}"
    return RUNTIME, f"{type(exc).__name__}: {exc} (run 'llada --debug ...' for the traceback)"


def report(exc: BaseException) -> int:
    """Print ``exc`` as one ``Error: ...`` line (plus the traceback with ``--debug``); return the exit code."""
    from click.exceptions import NoArgsIsHelpError

    if isinstance(exc, NoArgsIsHelpError):  # bare `llada`: the help, as click prints it
        exc.show()
        return exc.exit_code
    code, message = classify(exc)
    if STATE.debug and not isinstance(exc, click.ClickException):
        traceback.print_exception(exc)
    click.echo("Aborted." if code == INTERRUPTED else f"Error: {one_line(message)}", err=True)
    return code


class LladaGroup(click.Group):
    """The ``llada`` group: runs click in non-standalone mode and reports errors itself."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        STATE.debug = False
        try:
            rv = super().main(
                args, prog_name, complete_var, standalone_mode=False, windows_expand_args=windows_expand_args, **extra
            )
        except SystemExit:
            raise
        except BaseException as exc:
            code = report(exc)
            if not standalone_mode:
                raise
            sys.exit(code)
        code = rv if isinstance(rv, int) and not isinstance(rv, bool) else OK
        if standalone_mode:
            sys.exit(code)
        return rv
