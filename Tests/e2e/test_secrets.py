"""A password in DATABASE_URL never reaches wallet-server's output.

libpq's parse errors quote the offending token or the whole URL
(`invalid percent-encoded token: "s3cr3t%zzPW"`), and a URL that does not
parse cannot say where its password is to scrub it. Each command that takes
DATABASE_URL runs here with such URLs (and with parseable ones that fail to
connect); every secret below holds "s3cr3t", and none may appear on stdout or
stderr (where the reason is a JSON log line). Needs only the binary: no
session server, no database.
"""
import json
import os
import subprocess

import pytest

SECRET = "s3cr3t"

# (id, DATABASE_URL, what the error must say)
URLS = [
    ("unescaped percent", "postgresql://u:s3cr3t%zzPW@127.0.0.1:5432/w", "invalid percent-encoded token"),
    ("missing ipv6 bracket", "postgresql://u:s3cr3tPW@[::1:5432/w", 'matching "]" in IPv6 host address'),
    ("junk after ipv6 bracket", "postgresql://u:s3cr3tPW@[::1]x:5432/w", "unexpected character"),
    ("bad password parameter", "postgresql://u@127.0.0.1/w?password=%zzs3cr3tPW", "invalid percent-encoded token"),
    ("unterminated quote", "host=127.0.0.1 user=u password='s3cr3tPW", "unterminated quoted string"),
    ("space in password", "host=127.0.0.1 user=u password=s3cr3t zqx_s3cr3t_tail", 'missing "=" after'),
    # libpq parses these, but reads part of the password as host or port.
    ("at sign in password", "postgresql://u:s3cr3t@zqx_s3cr3t_tail@127.0.0.1:1/w", 'an "@" outside the user name'),
    ("slash in password", "postgresql://u:s3cr3t/zqx_s3cr3t_tail@127.0.0.1:1/w", 'an "@" outside the user name'),
    # Parseable, but nothing listens on port 1.
    ("refused url", "postgresql://u:s3cr3tPW@127.0.0.1:1/w", "Connection refused"),
    ("refused key=value", "host=127.0.0.1 port=1 user=u password=s3cr3tPW", "Connection refused"),
]


@pytest.fixture(autouse=True)
def _server_alive_and_ledger_verified():
    """Overrides conftest's check after every test: these tests start no server."""
    yield


@pytest.mark.parametrize("command", ["migrate", "verify", "serve"])
@pytest.mark.parametrize("url,expected", [(u, e) for _, u, e in URLS], ids=[i for i, _, _ in URLS])
def test_database_url_password_is_never_printed(server_binary, command, url, expected):
    env = dict(os.environ, DATABASE_URL=url)
    # serve must fail before it listens; a free port keeps a regression from colliding with anything.
    res = subprocess.run([server_binary, command, "--listen", "127.0.0.1:0"], env=env,
                         capture_output=True, text=True, timeout=60)
    output = res.stdout + res.stderr
    assert res.returncode == 1, "%s exited %d:\n%s" % (command, res.returncode, output)
    assert SECRET not in output, "%s printed the password:\n%s" % (command, output)
    # The reason is in a log line: JSON on stderr, its quotes escaped, so it is read decoded.
    messages = [json.loads(line)["message"] for line in res.stderr.splitlines()]
    assert not any(SECRET in m for m in messages), "%s logged the password:\n%s" % (command, output)
    assert any(expected in m for m in messages), "%s does not say what is wrong:\n%s" % (command, output)
