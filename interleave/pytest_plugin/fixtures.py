"""Fresh function-scoped fixtures for every schedule of a marked test."""

from __future__ import annotations

from typing import Any

import pytest


class FreshFixtures:
    """Tears down the test's function-scoped fixtures and sets them up again, once per schedule.

    The first setup (pytest's own, before the test is called) happens outside any run and
    is released before exploring; every run then makes its own inside the run, so locks
    and threads a fixture creates are controlled. The last run's fixtures are torn down by
    pytest as usual. Fixtures of wider scope are shared, as pytest always shares them.
    """

    def __init__(self, item: pytest.Function) -> None:
        self.item = item
        self._stash: dict[Any, Any] = {}

    @property
    def _stash_storage(self) -> dict[Any, Any]:
        return getattr(self.item.stash, "_storage", {})

    def _function_scoped(self) -> list[Any]:
        info = self.item._fixtureinfo
        found = []
        for name in info.names_closure:
            for fixturedef in info.name2fixturedefs.get(name, ()):
                if fixturedef.scope == "function" and fixturedef not in found:
                    found.append(fixturedef)
        return found

    def shared_values(self) -> list[Any]:
        """The values of the test's fixtures of wider scope (made outside any run)."""
        info = self.item._fixtureinfo
        values = []
        for name in info.names_closure:
            fixturedefs = info.name2fixturedefs.get(name, ())
            if fixturedefs and fixturedefs[-1].scope != "function" and fixturedefs[-1].cached_result is not None:
                values.append(fixturedefs[-1].cached_result[0])
        return values

    def release_outside_run(self) -> None:
        # Some teardowns consume what pytest's setup left in the item's stash (tmp_path
        # deletes its entry); each schedule's teardown must find it again.
        self._stash = dict(self._stash_storage)
        self._teardown()

    def renew(self) -> dict[str, Any]:
        """Inside a run: tear down the previous schedule's fixtures, set up new ones, return them."""
        self._teardown()
        self.item._initrequest()
        self.item._request._fillfixtures()
        return self.item.funcargs

    def _teardown(self) -> None:
        for key, value in self._stash.items():
            self._stash_storage.setdefault(key, value)
        # Reverse setup order; finishing a fixture first finishes those that depend on it.
        for fixturedef in reversed(self._function_scoped()):
            if fixturedef.cached_result is not None:
                fixturedef.finish(request=self.item._request)

