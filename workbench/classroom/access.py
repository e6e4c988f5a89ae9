"""Who may see and change what in classroom mode: a `Viewer` is the account behind a request.

Outside classroom mode the viewer is `SINGLE_USER` and may do everything, as always. In it, a student sees their own
things and what the teacher shared with the class (read-only), and changes only their own; the teacher sees and
changes everything. Things made before classroom mode was turned on have no owner: they are the teacher's.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.i18n import Message, message


@dataclass(frozen=True)
class Viewer:
    user: str = ""  # "" = the single-user workbench
    teacher: bool = False

    @property
    def in_class(self) -> bool:
        return bool(self.user)

    @property
    def owner(self) -> str:
        """What to write as the owner of something this viewer makes."""
        return self.user

    def sees(self, owner: str, shared: bool = False) -> bool:
        return not self.user or self.teacher or owner == self.user or bool(shared)

    def changes(self, owner: str) -> bool:
        return not self.user or self.teacher or owner == self.user


SINGLE_USER = Viewer()
NOBODY = Viewer(user="\x00nobody")  # no account: sees only what is shared, changes nothing of anyone's


KINDS = ("run", "file", "vote", "preset", "report")


def not_yours(kind: str) -> Message:
    """The refusal a student gets for another's run, file, vote, …: the same whether it exists or not."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    return message("classroom.not_yours", what=message(f"classroom.what.{kind}"))
