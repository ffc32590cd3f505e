"""Optional dependencies: import them on use, with the exact ``pip install`` on failure."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from llada_sdk.errors import MissingExtraError


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception in its ``__cause__`` / ``__context__`` chain, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [c for c in (e.__cause__, e.__context__) if c is not None]


def interrupted(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is ``exc`` or in its chain (code that turns it into another
    exception, e.g. an import that fails half-way, must not hide a Ctrl-C)."""
    return any(isinstance(e, KeyboardInterrupt) for e in exception_chain(exc))


def _not_installed(module: str, exc: ImportError) -> bool:
    """Whether ``module`` (or a parent package of it) is absent, as opposed to installed but failing
    to import (a broken install, a missing dependency of it, a half-imported package)."""
    name = getattr(exc, "name", None)
    if isinstance(exc, ModuleNotFoundError) and name and (module == name or module.startswith(name + ".")):
        return True
    try:
        return importlib.util.find_spec(module) is None
    except ImportError:
        # a top-level name imports nothing here: an import hook refuses it (as if absent); a dotted
        # one imports its parent package, which is then installed but broken
        return "." not in module
    except ValueError:  # a half-initialised module without a spec: installed
        return False


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise ``MissingExtraError`` naming ``pip install 'llada-sdk[extra]'``.

    Raises:
        MissingExtraError: ``module`` is not installed.
        KeyboardInterrupt: the import was interrupted (also when the package turned the interrupt into
            an ImportError).
        ImportError: ``module`` is installed but its import failed (naming it and the cause).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if interrupted(exc):
            raise KeyboardInterrupt from exc
        if _not_installed(module, exc):
            raise MissingExtraError(module, extra) from exc
        raise ImportError(
            f"{module} is installed but cannot be imported ({type(exc).__name__}: {exc}); if an import of it "
            f"was interrupted earlier in this process, restart it, else reinstall: pip install 'llada-sdk[{extra}]'",
            name=module,
        ) from exc


def require_torch() -> Any:
    """``torch``, or an error telling to ``pip install 'llada-sdk[torch]'``."""
    return require("torch", "torch")


def installed_entry_points(group: str) -> list[Any]:
    """The entry points of ``group`` from every installed distribution (not ``entry_points()``'s
    one-distribution-per-name view, in which a stale ``*.egg-info`` in the working directory hides the
    installed metadata)."""
    from importlib import metadata

    return [ep for dist in metadata.distributions() for ep in dist.entry_points if ep.group == group]
