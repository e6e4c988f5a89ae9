"""The run store as one viewer may use it: what every handler of the app reaches runs through.

`ScopedStore(store, viewer)` offers the reading and changing calls of `RunStore` that the tabs need, each checking
first that the viewer may see the run (or change it: rename, delete, restore, share). A student asking for another's
run, by guessing its id or sending a crafted request, gets the same refusal as for a run that does not exist
(`not_yours`), in their language, and nothing changes. Calls the tabs do not need are not offered at all, so a new
handler cannot reach around the check by accident. Outside classroom mode the viewer is the single user and every
check passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.classroom.access import Viewer, not_yours
from workbench.runs.store import RunRecord, RunStore, StoreError


class ScopedStore:
    def __init__(self, store: RunStore, viewer: Viewer) -> None:
        self._store = store
        self.viewer = viewer

    # ------------------------------------------------------------ reading

    def run(self, run_id: str, change: bool = False) -> RunRecord:
        """The run, if the viewer may see it (change=True: change it); StoreError with the refusal otherwise."""
        return self._store.run_for(self.viewer, run_id, change)

    def check(self, run_ids: Iterable[str], change: bool = False) -> list[str]:
        """The ids, all checked (the first one refused raises)."""
        ids = list(run_ids)
        for run_id in ids:
            self.run(run_id, change)
        return ids

    get_run = run

    def list_runs(self) -> list[RunRecord]:
        return self._store.list_runs(self.viewer)

    def load_config(self, run_id: str) -> Any:
        self.run(run_id)
        return self._store.load_config(run_id)

    def adapter_dir(self, run_id: str) -> Path:
        self.run(run_id)
        return self._store.adapter_dir(run_id)

    def read_metrics(self, run_id: str) -> list[dict[str, Any]]:
        self.run(run_id)
        return self._store.read_metrics(run_id)

    def read_json(self, run_id: str, name: str) -> Any:
        self.run(run_id)
        return self._store.read_json(run_id, name)

    def run_dir(self, run_id: str) -> Path:
        self.run(run_id)
        return self._store.run_dir(run_id)

    # ------------------------------------------------------------ changing

    def rename_run(self, run_id: str, name: str) -> RunRecord:
        self.run(run_id, change=True)
        return self._store.rename_run(run_id, name)

    def delete_run(self, run_id: str) -> Path | None:
        self.run(run_id, change=True)
        return self._store.delete_run(run_id)

    def share_run(self, run_id: str, shared: bool) -> RunRecord:
        """Show a run to the whole class, read-only (the teacher's call; a student may not share)."""
        if self.viewer.in_class and not self.viewer.teacher:
            raise StoreError(not_yours("run"))
        self.run(run_id, change=True)
        self._store.update_run(run_id, shared=1 if shared else 0)
        return self._store.get_run(run_id)

    # ------------------------------------------------------------ the trash: each viewer's own deleted runs

    def trash(self) -> list[tuple[RunRecord, float, int]]:
        return [item for item in self._store.trash() if self.viewer.changes(item[0].owner)]

    def restore_run(self, run_id: str) -> RunRecord:
        if not any(record.run_id == run_id for record, _when, _size in self.trash()):
            if self.viewer.in_class and not self.viewer.teacher:
                raise StoreError(not_yours("run"))
        return self._store.restore_run(run_id)

    def empty_trash(self) -> tuple[int, int]:
        """Delete the viewer's runs in the trash for good (the teacher's and single user's: all of it)."""
        if not self.viewer.in_class or self.viewer.teacher:
            return self._store.empty_trash()
        return self._store.empty_trash(only=[record.run_id for record, _when, _size in self.trash()])
