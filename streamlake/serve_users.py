"""The SQL server's password file (`serve.password_file`): the one definition of its line format on
the Python side, and the edits `streamlake serve-user` makes to it.

A line is `user:pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`: PBKDF2-HMAC-SHA256 of the
password's UTF-8 bytes, a 32-byte hash. The server's Java provider
(`io.streamlake.serving.PasswordAuthenticator`) checks logins against it with the same bounds;
tests/test_serving_auth.py logs in through a real server with lines made here. Prompting for a
password is the command line's job, not this module's.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from pathlib import Path

SCHEME = "pbkdf2_sha256"
# OWASP's 2023 figure for PBKDF2-HMAC-SHA256; a login costs the server about half a second of CPU at it.
ITERATIONS = 600_000
# The provider refuses a line outside these: too few is a weak hash, too many lets one line stall every login.
MIN_ITERATIONS = 100_000
MAX_ITERATIONS = 10_000_000
SALT_BYTES = 16
HASH_BYTES = 32


class PasswordFileError(ValueError):
    """A user name, password or file the password file cannot hold; the message names which."""


def check_user(user: str) -> str:
    if not user:
        raise PasswordFileError("a user name must not be empty")
    if ":" in user:
        raise PasswordFileError(f"a user name must not contain ':' (it ends the name in the file): {user!r}")
    if user != user.strip() or any(not ch.isprintable() for ch in user):
        raise PasswordFileError(f"a user name must not contain spaces at either end or control characters: {user!r}")
    if user.startswith("#"):
        raise PasswordFileError(f"a user name must not start with '#' (the file's comment mark): {user!r}")
    return user


def check_password(password: str) -> str:
    if not password:
        raise PasswordFileError("a password must not be empty")
    if "\x00" in password:
        raise PasswordFileError("a password must not contain a NUL character (the login protocol's separator)")
    return password


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """`pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>` for this password, with a fresh random salt unless given."""
    check_password(password)
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise PasswordFileError(f"iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, got {iterations}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    if len(salt) < SALT_BYTES:
        raise PasswordFileError(f"a salt must have at least {SALT_BYTES} bytes, got {len(salt)}")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    return f"{SCHEME}${iterations}${salt.hex()}${digest.hex()}"


def password_line(user: str, password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """The file's line for this user and password (no newline)."""
    return f"{check_user(user)}:{hash_password(password, iterations=iterations, salt=salt)}"


def _user_of(line: str) -> str | None:
    entry = line.strip()
    if not entry or entry.startswith("#") or ":" not in entry:
        return None
    return entry.partition(":")[0]


def set_user(path: Path, user: str, password: str, *, iterations: int = ITERATIONS) -> bool:
    """Add the user's line to the file, or replace it (and any duplicate) where the first one was;
    other lines and comments are kept. True when the user was already there. The file is replaced
    atomically, so a server reading it at a login never sees half of it; it is created mode 0600."""
    line = password_line(user, password, iterations=iterations)
    lines = _read_lines(path)
    replaced = False
    kept: list[str] = []
    for old in lines:
        if _user_of(old) == user:
            if not replaced:
                kept.append(line)
            replaced = True
        else:
            kept.append(old)
    if not replaced:
        kept.append(line)
    _write_lines(path, kept)
    return replaced


def remove_user(path: Path, user: str) -> bool:
    """Remove the user's lines from the file; True when there were any. The file must exist."""
    check_user(user)
    if not path.is_file():
        raise PasswordFileError(f"no password file at {path}")
    lines = _read_lines(path)
    kept = [old for old in lines if _user_of(old) != user]
    if len(kept) != len(lines):
        _write_lines(path, kept)
    return len(kept) != len(lines)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswordFileError(f"cannot read the password file {path}: {exc}") from None


def _write_lines(path: Path, lines: list[str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
        # mkstemp creates the file 0600, so the hashes are never readable by others, not even for a moment.
        fd, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise PasswordFileError(f"cannot write the password file {path}: {exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("".join(f"{line}\n" for line in lines))
        os.chmod(staged, mode)
        os.replace(staged, path)
    except OSError as exc:
        Path(staged).unlink(missing_ok=True)
        raise PasswordFileError(f"cannot write the password file {path}: {exc}") from None
