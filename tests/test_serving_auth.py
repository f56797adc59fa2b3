"""Password authentication of `streamlake serve`: one real Thrift server with
`serve.authentication: password`, its users made by `streamlake serve-user`, logged in to with PyHive
and beeline; and the command itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from thrift.transport.TTransport import TTransportException

from streamlake.serve_users import ITERATIONS, password_line, remove_user, set_user
from tests.serving_support import beeline, beeline_rows, pyhive_cursor, pyhive_rows, running_thrift_server

STREAMLAKE = str(Path(sys.executable).parent / "streamlake")
D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
QUERY = "SELECT event_date, currency, revenue FROM gold.revenue_daily ORDER BY event_date"
PYHIVE_ROWS = [("2026-01-01", "EUR", 10.5), ("2026-01-02", "USD", 7.0)]
BEELINE_ROWS = [["2026-01-01", "EUR", "10.5"], ["2026-01-02", "USD", "7.0"]]
# No spaces: beeline (Hive 2.3's) splits its connection line, -p's value included, at spaces.
ANALYST, ANALYST_PASSWORD = "analyst", "correct-horse-battery-staple"
# Not ASCII, with the file's ':' and '#' in it: the Java side must hash the same UTF-8 bytes.
FINANCE, FINANCE_PASSWORD = "finance", "Zürich:€#2026"
# What Hive's PLAIN SASL server answers for every refusal, whatever the provider said: the client
# learns nothing about which part was wrong.
REFUSED = "Error validating the login"
PYHIVE_REFUSED = f"Bad status: 3 (b'{REFUSED}')"


def serve_user(*args: str, stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run([STREAMLAKE, "serve-user", *args], input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, spark) -> Path:
    root = tmp_path_factory.mktemp("auth-lake")
    rows = [(D1, "EUR", 10.5), (D2, "USD", 7.0)]
    spark.createDataFrame(rows, "event_date date, currency string, revenue double").write.format("delta").save(
        f"{root}/gold/revenue_daily")
    return root


@pytest.fixture(scope="module")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth-users") / "serve-users"
    made = serve_user(ANALYST, "--password-file", str(path), "--password-stdin", stdin=f"{ANALYST_PASSWORD}\n")
    assert made.returncode == 0, made.stderr
    set_user(path, FINANCE, FINANCE_PASSWORD)
    return path


@pytest.fixture(scope="module")
def server(lake: Path, password_file: Path, settings_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    env = {**settings_env, "STREAMLAKE_LAKEHOUSE__ROOT": lake.as_uri(),
           "STREAMLAKE_SERVE__AUTHENTICATION": "password", "STREAMLAKE_SERVE__PASSWORD_FILE": str(password_file)}
    with running_thrift_server(env, tmp_path_factory.mktemp("auth-serve")) as srv:
        yield srv


@pytest.fixture
def users_file(password_file: Path):
    """The server's password file, put back as it was after the test edits it."""
    before = password_file.read_text()
    try:
        yield password_file
    finally:
        password_file.write_text(before)


def pyhive_login(server, user: str, password: str) -> list[tuple]:
    rows = pyhive_rows(server, QUERY, username=user, password=password, auth="CUSTOM")
    return [(str(d), c, r) for d, c, r in rows]


def pyhive_refusal(server, user: str, password: str) -> str:
    with pytest.raises(TTransportException) as refused:
        pyhive_cursor(server, username=user, password=password, auth="CUSTOM")
    return str(refused.value)


def beeline_refusal(server, user: str, password: str | None) -> str:
    """beeline's error line; it must have run nothing."""
    result = beeline(server, QUERY, user=user, password=password)
    assert (result.returncode, "EUR" in result.stdout) == (1, False), result.stdout
    [error] = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    return error


def beeline_refused(server) -> str:
    return (f"Error: Could not open client transport with JDBC Uri: {server.jdbc_url}: "
            f"Peer indicated failure: {REFUSED} (state=08S01,code=0)")


def test_each_user_reads_the_exact_rows_through_pyhive_and_beeline(server):
    assert pyhive_login(server, ANALYST, ANALYST_PASSWORD) == PYHIVE_ROWS
    assert pyhive_login(server, FINANCE, FINANCE_PASSWORD) == PYHIVE_ROWS
    assert beeline_rows(server, QUERY, user=ANALYST, password=ANALYST_PASSWORD) == BEELINE_ROWS
    assert beeline_rows(server, QUERY, user=FINANCE, password=FINANCE_PASSWORD) == BEELINE_ROWS


def log_count(server, text: str) -> int:
    return server.log_file.read_text(errors="replace").count(text)


@pytest.mark.parametrize(("user", "password", "logged"), [
    pytest.param(ANALYST, "correct-horse-battery-stapl", "wrong password", id="wrong-password"),
    pytest.param(FINANCE, ANALYST_PASSWORD, "wrong password", id="another-users-password"),
    pytest.param("nobody", ANALYST_PASSWORD, "not in the password file {file}", id="unknown-user"),
])
def test_a_wrong_login_is_refused_by_both_clients_and_the_server_keeps_serving(server, password_file, user, password,
                                                                                logged):
    line = f"WARN PasswordAuthenticator: login refused for user {user}: {logged.format(file=password_file)}\n"
    before = log_count(server, line)
    assert pyhive_refusal(server, user, password) == PYHIVE_REFUSED
    assert beeline_refusal(server, user, password) == beeline_refused(server)
    assert log_count(server, line) == before + 2
    assert pyhive_login(server, ANALYST, ANALYST_PASSWORD) == PYHIVE_ROWS


def test_a_login_without_a_password_is_refused_by_both_clients(server):
    assert pyhive_refusal(server, ANALYST, "") == PYHIVE_REFUSED
    assert beeline_refusal(server, ANALYST, None) == beeline_refused(server)
    # Hive's PLAIN server refuses an empty password itself, before the provider is asked.
    assert "SaslException: No password name provided" in server.log_file.read_text(errors="replace")
    assert pyhive_login(server, ANALYST, ANALYST_PASSWORD) == PYHIVE_ROWS


def test_an_unknown_user_is_refused_as_slowly_as_a_wrong_password(server):
    def refusal_s(user: str) -> float:
        started = time.perf_counter()
        pyhive_refusal(server, user, "not the password")
        return time.perf_counter() - started

    wrong = min(refusal_s(ANALYST) for _ in range(3))
    unknown = min(refusal_s("nobody") for _ in range(3))
    # Without the provider's dummy hash an unknown user is refused in ~5 ms against ~500 ms.
    assert unknown >= 0.25 * wrong, (unknown, wrong)


def test_users_added_changed_and_removed_while_the_server_runs_apply_at_the_next_login(server, users_file):
    assert pyhive_refusal(server, "ops", "first password") == PYHIVE_REFUSED
    set_user(users_file, "ops", "first password")
    assert pyhive_login(server, "ops", "first password") == PYHIVE_ROWS
    set_user(users_file, "ops", "second-password")
    assert pyhive_refusal(server, "ops", "first password") == PYHIVE_REFUSED
    assert beeline_rows(server, QUERY, user="ops", password="second-password") == BEELINE_ROWS
    assert remove_user(users_file, "ops")
    assert pyhive_refusal(server, "ops", "second-password") == PYHIVE_REFUSED
    assert beeline_refusal(server, "ops", "second-password") == beeline_refused(server)
    assert pyhive_login(server, ANALYST, ANALYST_PASSWORD) == PYHIVE_ROWS


def _pbkdf2_hex(password: str, salt: bytes, iterations: int, length: int = 32) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, length).hex()


BROKEN_PASSWORD = "broken's password"
SALT = bytes(range(16))
GOOD = _pbkdf2_hex(BROKEN_PASSWORD, SALT, 100_000)
# Each line would admit BROKEN_PASSWORD if the provider did not check what is wrong with it.
MALFORMED = {
    "few-iterations": (f"pbkdf2_sha256$1000${SALT.hex()}${_pbkdf2_hex(BROKEN_PASSWORD, SALT, 1000)}",
                       "iterations 1000 outside 100000..10000000"),
    "short-salt": (f"pbkdf2_sha256$100000${SALT[:4].hex()}${_pbkdf2_hex(BROKEN_PASSWORD, SALT[:4], 100_000)}",
                   "a salt of 4 bytes, fewer than 16"),
    "short-hash": (f"pbkdf2_sha256$100000${SALT.hex()}${GOOD[:32]}", "a hash of 16 bytes, not 32"),
    "other-scheme": (f"pbkdf2_sha1$100000${SALT.hex()}${GOOD}", "not pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>"),
    "extra-field": (f"pbkdf2_sha256$100000${SALT.hex()}${GOOD}$", "not pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>"),
    "iterations-not-a-number": (f"pbkdf2_sha256$many${SALT.hex()}${GOOD}", "iterations are not a number"),
    "salt-not-hex": (f"pbkdf2_sha256$100000${'zz' * 16}${GOOD}", "the salt is not hex"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_line_refuses_its_user_logs_file_and_line_and_leaves_others_in(server, users_file, case):
    stored, reason = MALFORMED[case]
    good_line = f"broken:pbkdf2_sha256$100000${SALT.hex()}${GOOD}"
    lines = users_file.read_text().splitlines()
    users_file.write_text("\n".join(["# users of the SQL server", "no colon here", f"broken:{stored}", *lines]) + "\n")
    assert pyhive_refusal(server, "broken", BROKEN_PASSWORD) == PYHIVE_REFUSED
    log = server.log_file.read_text(errors="replace")
    assert f"login refused for user broken: password file {users_file} line 3 is malformed ({reason})" in log
    assert f"password file {users_file} line 2: not user:pbkdf2_sha256$..., ignored" in log
    assert pyhive_login(server, FINANCE, FINANCE_PASSWORD) == PYHIVE_ROWS
    # The same user with a well-formed line of the same password gets in: the refusal was the line's.
    users_file.write_text(f"{good_line}\n")
    assert pyhive_login(server, "broken", BROKEN_PASSWORD) == PYHIVE_ROWS


# -- streamlake serve-user, without a server ---------------------------------------------------


def test_serve_user_prints_a_line_of_the_documented_format_and_iterations():
    made = serve_user(ANALYST, "--password-stdin", stdin=f"{ANALYST_PASSWORD}\n")
    assert made.returncode == 0, made.stderr
    user, scheme, iterations, salt, digest = made.stdout.strip().replace(":", "$", 1).split("$")
    assert (user, scheme, int(iterations), ITERATIONS, len(bytes.fromhex(salt))) == (ANALYST, "pbkdf2_sha256", 600_000,
                                                                                     600_000, 16)
    assert digest == _pbkdf2_hex(ANALYST_PASSWORD, bytes.fromhex(salt), 600_000)
    assert made.stdout.strip() == password_line(ANALYST, ANALYST_PASSWORD, salt=bytes.fromhex(salt))


def test_serve_user_prompts_twice_and_writes_a_new_file_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "etc" / "serve-users"
    made = serve_user("bob", "--password-file", str(path), stdin="hunter2 is long\nhunter2 is long\n")
    assert made.returncode == 0, made.stderr
    assert made.stdout == f"added user bob to {path}; it applies from the next login\n"
    assert "Password for bob" in made.stderr and "Repeat the password" in made.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [line] = path.read_text().splitlines()
    salt = bytes.fromhex(line.split("$")[2])
    assert line == password_line("bob", "hunter2 is long", salt=salt)


def test_serve_user_replaces_only_its_users_line_and_keeps_the_rest(tmp_path):
    path = tmp_path / "serve-users"
    path.write_text("# analysts\nalice:pbkdf2_sha256$1$00$00\nbob:old\ncarol:pbkdf2_sha256$1$00$00\nbob:older\n")
    path.chmod(0o640)
    made = serve_user("bob", "--password-file", str(path), "--password-stdin", stdin="new password\n")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"replaced the password of user bob in {path}")
    assert "beeline cannot pass a password with spaces" in made.stderr
    lines = path.read_text().splitlines()
    assert [lines[0], lines[1], lines[3]] == ["# analysts", "alice:pbkdf2_sha256$1$00$00", "carol:pbkdf2_sha256$1$00$00"]
    assert len(lines) == 4 and lines[2] == password_line("bob", "new password", salt=bytes.fromhex(lines[2].split("$")[2]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    removed = serve_user("bob", "--password-file", str(path), "--remove", stdin="")
    assert (removed.returncode, removed.stdout) == (0, f"removed user bob from {path}\n")
    assert "bob:" not in path.read_text()


@pytest.mark.parametrize(("args", "stdin", "named"), [
    pytest.param(["a:b", "--password-stdin"], "pw\n", "argument NAME: a user name must not contain ':'", id="colon"),
    pytest.param(["", "--password-stdin"], "pw\n", "argument NAME: a user name must not be empty", id="empty-name"),
    pytest.param(["#bob", "--password-stdin"], "pw\n", "argument NAME: a user name must not start with '#'", id="comment"),
    pytest.param(["bob"], "one\ntwo\n", "argument password: the two entries do not match", id="mismatch"),
    pytest.param(["bob"], "\n\n", "argument password: must not be empty", id="empty-prompt"),
    pytest.param(["bob", "--password-stdin"], "", "argument --password-stdin: no password", id="empty-stdin"),
    pytest.param(["bob", "--remove"], "", "argument --remove: needs --password-file", id="remove-without-file"),
])
def test_serve_user_bad_input_exits_2_naming_the_argument_and_writes_nothing(tmp_path, args, stdin, named):
    path = tmp_path / "serve-users"
    made = serve_user(*args, *([] if "--remove" in args else ["--password-file", str(path)]), stdin=stdin)
    assert made.returncode == 2, made.stdout
    assert named in made.stderr
    assert not path.exists()
    assert made.stdout == ""


def test_serve_user_names_a_password_file_it_cannot_write(tmp_path):
    made = serve_user("bob", "--password-file", str(tmp_path), "--password-stdin", stdin="pw\n")
    assert made.returncode == 2
    assert f"argument --password-file: cannot read the password file {tmp_path}" in made.stderr
    assert os.listdir(tmp_path) == []


def test_password_authentication_without_its_file_exits_2_naming_the_key(settings_env, tmp_path):
    missing = tmp_path / "serve-users"
    env = {**settings_env, "STREAMLAKE_SERVE__AUTHENTICATION": "password", "STREAMLAKE_SERVE__PASSWORD_FILE": str(missing)}
    result = subprocess.run([STREAMLAKE, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"serve.password_file: no file at {missing}" in result.stderr
