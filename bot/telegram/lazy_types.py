"""Build aiogram's pydantic models on first use instead of all at import: ~100 MiB less RSS.

`import aiogram` ends (aiogram/types/__init__.py) with `model_rebuild()` on each of its ~440
Telegram types, which makes pydantic build a validator and a serializer for every one of them,
each inlining the schemas of the types it nests. On aiogram 3.31 with pydantic 2.13 that alone
is ~150 MiB of RSS (measured: bench/, docs/BENCHMARKS.md; aiogram issue #1513), of which a bot
uses a handful: Update, Message, CallbackQuery, User and what they nest.

`defer_aiogram_types()`, called before aiogram is first imported, lets that loop only record,
on each type, the namespace its forward references resolve in. The types stay as aiogram
declares them (`defer_build=True`): pydantic builds one the first time it validates or
serializes it, through `model_rebuild()`, which now finds the names in that namespace.
Behaviour is unchanged; the first update of a new kind costs the build of its types once.

`import bot` (bot/__init__.py) does not import aiogram: it calls `defer_aiogram_types_on_import()`,
which has the first import of aiogram, whoever makes it, run with the builds deferred, so that
the messenger-neutral layers (bot.conversation, bot.screens, bot.texts, services, storage) load
without aiogram and the Telegram front end still gets its types lazily.

If aiogram is already imported, or pydantic's `model_rebuild` no longer takes the arguments
used here, nothing is changed and aiogram builds everything as before.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

AIOGRAM = "aiogram"
AIOGRAM_TYPES = "aiogram.types"


def defer_aiogram_types() -> bool:
    """Import aiogram with its types' builds deferred; True if deferred, False if aiogram was
    already imported (or pydantic cannot be adapted) and everything was built as usual."""
    if AIOGRAM in sys.modules:
        return False
    with _deferred_builds() as deferred:
        import aiogram  # noqa: F401  (the import whose model_rebuild loop is deferred)
    return deferred


def defer_aiogram_types_on_import() -> None:
    """Have aiogram's first import, by whichever module, run as `defer_aiogram_types()` would;
    nothing if aiogram is already imported (or the hook is already in place)."""
    if AIOGRAM in sys.modules or any(isinstance(f, _DeferringFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _DeferringFinder())


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds aiogram as the rest of sys.meta_path would, with a loader that executes it with the
    builds deferred; then steps aside."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != AIOGRAM:
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(AIOGRAM)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _DeferringLoader(spec.loader)
        return spec


class _DeferringLoader(importlib.abc.Loader):
    """aiogram's own loader, its package executed with the builds of its types deferred."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        with _deferred_builds():
            self.loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:  # resource readers and the like: the loader's
        return getattr(self.loader, name)


@contextlib.contextmanager
def _deferred_builds() -> Iterator[bool]:
    """While inside, aiogram's types only record their namespace instead of being built; after,
    every aiogram.types module gets the names. Yields False (and changes nothing) if pydantic's
    `model_rebuild` cannot be adapted."""
    original = BaseModel.__dict__["model_rebuild"]
    parameters = inspect.signature(original.__func__).parameters
    if "_types_namespace" not in parameters or "force" not in parameters:
        yield False
        return
    namespace: dict[str, Any] = {}
    BaseModel.model_rebuild = classmethod(  # type: ignore[method-assign,assignment]
        _deferring(original.__func__, namespace)
    )
    try:
        yield True
    finally:
        BaseModel.model_rebuild = original  # type: ignore[method-assign]
    _share(namespace)


def _deferring(
    rebuild: Callable[..., bool | None], namespace: dict[str, Any]
) -> Callable[..., bool | None]:
    def model_rebuild(
        cls: type[BaseModel],
        *,
        force: bool = False,
        _types_namespace: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> bool | None:
        if (
            _types_namespace is not None
            and not force
            and not cls.__pydantic_complete__
            and cls.__module__.startswith(AIOGRAM_TYPES + ".")
            and cls.model_config.get("defer_build")
        ):
            namespace.update(_types_namespace)  # the same mapping for every type
            return None
        return rebuild(cls, force=force, _types_namespace=_types_namespace, **kwargs)

    return model_rebuild


def _share(namespace: Mapping[str, Any]) -> None:
    """Give every module of aiogram.types the names its annotations use (imported there for
    type checkers only), so that a build on first use, of a type or of a method nesting it,
    resolves them as the deferred model_rebuild() would have."""
    for name, module in list(sys.modules.items()):
        if module is not None and name.startswith(AIOGRAM_TYPES + "."):
            for key, value in namespace.items():
                module.__dict__.setdefault(key, value)
