"""Accounts for classroom mode: `user,password,role` rows in a CSV file (role `teacher` or `student`).

A password may be written as it is or as a hash made by `python -m workbench hash-password` (PBKDF2-SHA256 with a
random salt, `pbkdf2_sha256$<iterations>$<salt>$<hash>`), so the file need not hold anyone's password in the clear.
Checking compares in constant time either way.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import secrets
from dataclasses import dataclass
from pathlib import Path

from workbench.i18n import message

TEACHER, STUDENT = "teacher", "student"
ROLES = (TEACHER, STUDENT)
HASH_SCHEME = "pbkdf2_sha256"
ITERATIONS = 600_000  # OWASP's figure for PBKDF2-SHA256
COLUMNS = ("user", "password", "role")


class AccountsError(ValueError):
    """An accounts file that cannot be used; the message names the line and the fix."""


@dataclass(frozen=True)
class Account:
    user: str
    role: str
    secret: str  # the password as written, or its hash

    @property
    def is_teacher(self) -> bool:
        return self.role == TEACHER


def hash_password(password: str, iterations: int = ITERATIONS, salt: str | None = None) -> str:
    """The form of a password to write in the accounts file instead of the password itself."""
    salt = salt or secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("ascii"), iterations)
    return f"{HASH_SCHEME}${iterations}${salt}${base64.b64encode(digest).decode('ascii')}"


def verify_password(password: str, secret: str) -> bool:
    """Whether `password` is the one `secret` stands for (a hash from hash_password, or the password itself)."""
    if secret.startswith(HASH_SCHEME + "$"):
        try:
            _scheme, iterations, salt, _digest = secret.split("$")
            expected = hash_password(password, int(iterations), salt)
        except ValueError:
            return False
        return hmac.compare_digest(expected.encode("utf-8"), secret.encode("utf-8"))
    return hmac.compare_digest(password.encode("utf-8"), secret.encode("utf-8"))


def parse_accounts(text: str, source: str = "accounts.csv") -> dict[str, Account]:
    """The accounts of a CSV text by user name; refused, naming the line, when a row cannot be used."""
    rows = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [cell.strip().lower() for cell in next(rows, [])]
    if [name for name in COLUMNS if name not in header]:
        raise AccountsError(message("classroom.accounts.columns", source=source, found=", ".join(header) or "-"))
    at = {name: header.index(name) for name in COLUMNS}
    accounts: dict[str, Account] = {}
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = {name: (row[i].strip() if i < len(row) else "") for name, i in at.items()}
        user, role = cells["user"], cells["role"].lower()
        if not user or not cells["password"]:
            raise AccountsError(message("classroom.accounts.empty", source=source, line=line))
        if role not in ROLES:
            raise AccountsError(message("classroom.accounts.role", source=source, line=line, role=cells["role"]))
        if user in accounts:
            raise AccountsError(message("classroom.accounts.twice", source=source, line=line, user=user))
        accounts[user] = Account(user, role, cells["password"])
    if not any(account.is_teacher for account in accounts.values()):
        raise AccountsError(message("classroom.accounts.no_teacher", source=source))
    return accounts


def read_accounts(path: str | Path) -> dict[str, Account]:
    """The accounts of a CSV file (UTF-8, with or without a BOM)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AccountsError(message("classroom.accounts.missing", path=str(path))) from None
    except UnicodeDecodeError:
        raise AccountsError(message("classroom.accounts.encoding", path=str(path))) from None
    return parse_accounts(text, path.name)


def check_login(accounts: dict[str, Account], user: str, password: str) -> bool:
    """Whether the user exists and the password is theirs (the same work either way, so timing tells nothing)."""
    account = accounts.get(user)
    if account is None:
        verify_password(password, hash_password("-", salt="0" * 32))  # spend the same time as a real check
        return False
    return verify_password(password, account.secret)
