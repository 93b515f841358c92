"""Where a served model is: the OpenAI base URL, the served model's name, and the name of the environment variable
that holds its key (never the key). ``parse_endpoint`` is the one check of what a user gives; ``endpoint_slug`` the
file-name-safe name a run's folder and fit are filed under."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from profiler.errors import UserError

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI base URL (``.../v1``), the served model's name, and the name of the environment variable that
    holds the key (none: no ``Authorization`` header)."""

    url: str
    model: str
    api_key_env: str | None = None

    def key(self) -> str | None:
        """The key, read from its variable now (never kept); None without one."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def headers(self) -> dict[str, str]:
        """The headers every request carries: the key's ``Authorization``, where there is a key."""
        key = self.key()
        return {"Authorization": f"Bearer {key}"} if key else {}


def parse_endpoint(url: str, model: str, api_key_env: str | None) -> Endpoint:
    """The one check of what a user gives: http(s), a host, no credentials, query or fragment in the URL (none
    of it echoed back: it may hold a secret); a printable model name; a valid variable name that is set."""
    url = url.strip().rstrip("/")
    if not url.isprintable() or any(c.isspace() for c in url):
        raise UserError("--endpoint: the URL holds spaces or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port out of range or not a number raises
    except ValueError:
        raise UserError("--endpoint: not a valid URL (its port or host does not parse)") from None
    if parts.scheme not in ("http", "https"):
        raise UserError("--endpoint: the URL must start with http:// or https://")
    if "@" in parts.netloc:
        raise UserError("--endpoint: no user or password in the URL; put the key in a variable named by "
                        "--api-key-env")
    if not parts.hostname:
        raise UserError("--endpoint: the URL names no host")
    if "?" in url or "#" in url:
        raise UserError("--endpoint: no query or fragment in the URL (give the base URL, e.g. http://host:8000/v1)")
    model = model.strip()
    if not model or not model.isprintable() or len(model) > 256:
        raise UserError("--model: the served model's name must be 1 to 256 printable characters")
    if api_key_env is not None:
        if not _VARIABLE.fullmatch(api_key_env):
            raise UserError("--api-key-env: give the name of an environment variable (letters, digits, _), "
                            "not the key itself")
        key = os.environ.get(api_key_env)
        if not key:
            raise UserError(f"--api-key-env: the environment variable {api_key_env} is not set")
        if not (key.isascii() and key.isprintable()) or any(c.isspace() for c in key):
            raise UserError(f"--api-key-env: the key in {api_key_env} holds characters an HTTP header cannot carry")
    return Endpoint(url=url, model=model, api_key_env=api_key_env)


def endpoint_slug(endpoint: Endpoint) -> str:
    """A file-name-safe name of the server: ``endpoint-<host>[-<port>]`` (the host lower-case, as URLs have it)."""
    parts = urlsplit(endpoint.url)
    name = re.sub(r"[^a-z0-9._-]", "-", (parts.hostname or "").replace(":", "_"))  # IPv6: ::1 is __1
    return f"endpoint-{name}" + (f"-{parts.port}" if parts.port else "")
