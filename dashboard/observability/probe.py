"""The web container's liveness probe: `python -m dashboard.observability.probe <url>`.

Exits 0 when GET <url> (the container's own gunicorn, `http://127.0.0.1:8000/healthz`) answers
200, else 1 with the reason on stderr. It sends, as the Host header, the first name of
ALLOWED_HOSTS (read from the environment as the settings read it): Django refuses any other Host
with 400 on every path, and that check stays on for /healthz too, since it is what keeps forged
Host headers out of the links and redirects the app builds. The probe is a client that knows the
site's name, like the TLS proxy in front. A redirect counts as a failure (it is not followed).
Needs neither Django nor the database, so a probe costs little every 30 seconds.
"""

from __future__ import annotations

import http.client
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

# The settings' default when ALLOWED_HOSTS is unset (dashboard/project/settings.py).
DEFAULT_HOST = "localhost"
TIMEOUT_SECONDS = 4


def allowed_hosts(environ: dict[str, str] | os._Environ = os.environ) -> list[str]:
    """ALLOWED_HOSTS as the settings read it: the variable, or the file ALLOWED_HOSTS_FILE names."""
    file_path = environ.get("ALLOWED_HOSTS_FILE")
    raw = Path(file_path).read_text() if file_path else environ.get("ALLOWED_HOSTS", "")
    return [item.strip() for item in raw.split(",") if item.strip()]


def probe_host(environ: dict[str, str] | os._Environ = os.environ) -> str:
    """A Host header Django's host check accepts: the first ALLOWED_HOSTS entry.

    A subdomain pattern (".example.com") also matches the bare domain; "*" (refused in
    production) matches anything.
    """
    hosts = allowed_hosts(environ)
    if not hosts:
        return DEFAULT_HOST
    first = hosts[0]
    if first == "*":
        return DEFAULT_HOST
    return first.lstrip(".")


def probe(url: str, environ: dict[str, str] | os._Environ = os.environ) -> tuple[bool, str]:
    """GET `url` with the accepted Host; (True, "") on 200, else (False, why)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=TIMEOUT_SECONDS
    )
    try:
        connection.request("GET", parts.path or "/", headers={"Host": probe_host(environ)})
        status = connection.getresponse().status
    except OSError as error:
        return False, f"{type(error).__name__}: {error}"
    finally:
        connection.close()
    if status != 200:
        return False, f"HTTP {status}"
    return True, ""


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        print("usage: python -m dashboard.observability.probe <url>", file=sys.stderr)
        return 2
    ok, why = probe(arguments[0])
    if not ok:
        print(f"liveness probe failed: {why}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
