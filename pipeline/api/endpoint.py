"""Where requests go and the key they carry: --backend, --server-url / [api] server_url, and the key.

The API key comes from MISTRAL_API_KEY (backend "mistral") or OPENAI_API_KEY (backend "openai"), from
the environment, else a `.env` file in the working directory. It is handed to the SDK and nowhere
else: not stored, not logged, and scrubbed from error messages.
"""
from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.errors import UsageError
from pipeline.settings import Settings, config_path

KEY_VAR = "MISTRAL_API_KEY"
OPENAI_KEY_VAR = "OPENAI_API_KEY"
MISTRAL_URL = "https://api.mistral.ai"
# the official mistralai SDK; the official openai SDK (vLLM, SGLang, ...); a model folder run in this process
BACKENDS = ("mistral", "openai", "local")
KEY_VARS = {"mistral": KEY_VAR, "openai": OPENAI_KEY_VAR}


class ClientConfigError(UsageError):
    """No usable endpoint or key is configured (the message says what to set)."""


class AuthError(ClientConfigError):
    """The server refused the API key (401/403): nothing else will succeed, so the run stops."""


@dataclass(frozen=True)
class Endpoint:
    """Where requests go and the key they carry (never printed: repr hides it)."""

    server_url: str | None
    api_key: str | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """The server as scheme://host[:port], safe to store and show (no credentials, no query)."""
        parts = urlsplit(self.server_url or MISTRAL_URL)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path.rstrip('/')}"

    def scrub(self, text: str) -> str:
        """Text with the key, wherever it appears, replaced by "[API key]"."""
        return text.replace(self.api_key, "[API key]") if self.api_key else text


def read_dotenv(path: Path, name: str) -> str | None:
    """The value of `name` in a .env file (KEY=VALUE lines, optional `export`, quotes and `# comments`), else None."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        text = line.strip()
        if text.startswith("export "):
            text = text[len("export "):].strip()
        key, sep, value = text.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            end = value.find(value[0], 1) if value[:1] in ("'", '"') else -1
            # A quoted value ends at its closing quote; an unquoted one at a " #" comment.
            value = value[1:end] if end > 0 else re.split(r"\s#", value, maxsplit=1)[0].strip()
            return value or None
    return None


def api_key(env_file: Path | None = None, var: str = KEY_VAR) -> str | None:
    """The key in `var` (MISTRAL_API_KEY) from the environment, else from ./.env (or env_file);
    ClientConfigError when the value cannot be a key (a character outside printable ASCII, a space)."""
    value, where = os.environ.get(var, "").strip(), "the environment"
    if not value:
        env_file = env_file or Path(".env")
        value, where = read_dotenv(env_file, var) or "", str(env_file)
    if not value:
        return None
    check_key(value, where, var)
    return value


def check_key(key: str, where: str, var: str = KEY_VAR) -> None:
    """ClientConfigError naming the first character that cannot be in an API key (never the key itself).

    HTTP headers carry ASCII only, so such a key would fail deep inside the HTTP library; a key pasted
    with a typographic quote or a non-breaking space is the usual cause.
    """
    for i, ch in enumerate(key):
        if "!" <= ch <= "~":
            continue
        name = unicodedata.name(ch, "a control character")
        cause = ("a typographic quote" if ch in "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u00ab\u00bb"
                 else "a space" if ch.isspace() else "a character that is not plain ASCII")
        raise ClientConfigError(
            f"{var} (from {where}) holds {cause}, U+{ord(ch):04X} ({name}), at character {i + 1} of "
            f"{len(key)}. An API key is plain ASCII letters, digits and punctuation, with no spaces; it was "
            f"probably pasted with extra characters. Set {var} again to the key alone (it is not shown here).")


def resolve_endpoint(settings: Settings, server_url: str | None = None) -> Endpoint:
    """The endpoint from --server-url, else [api] server_url, else the Mistral API (which needs a key)."""
    configured = settings.api.server_url
    if isinstance(configured, list):  # a list is for backend "openai"; one URL in it is that URL
        if len(configured) > 1:
            raise ClientConfigError(f"[api] server_url in {settings.path or config_path()} lists several servers: "
                                    "that is for backend \"openai\" only; give the mistral backend one.")
        configured = configured[0] if configured else None
    url = server_url or configured
    key = api_key()
    if url is None and not key:
        empty = " (it is set but empty)" if KEY_VAR in os.environ else ""
        raise ClientConfigError(
            f"No API key: set {KEY_VAR}{empty} (environment or a .env file in this directory), or point "
            f"--server-url / [api] server_url in {settings.path or config_path()} at a Mistral-compatible server."
        )
    if url is not None:
        check_server_url(url)
    return Endpoint(url, key)


def resolve_endpoints(settings: Settings, backend: str | None = None,
                      server_urls: Sequence[str] = ()) -> tuple[str, tuple[Endpoint, ...]]:
    """The backend (--backend, else [api] backend) and its endpoints (--server-url, repeatable, else
    [api] server_url: one URL or a list); the openai backend needs at least one URL and no key; the local
    backend has none."""
    where = settings.path or config_path()
    name = backend or settings.api.backend
    if name not in BACKENDS:
        raise ClientConfigError(f"unknown backend {name!r} (--backend / [api] backend in {where}): use one of "
                                f"{', '.join(BACKENDS)}.")
    if name == "local":
        if server_urls:
            raise ClientConfigError("--server-url is for --backend mistral or openai: --backend local runs the "
                                    "model folder given as --model in this process.")
        return name, ()
    configured = settings.api.server_url
    urls = list(server_urls) or ([configured] if isinstance(configured, str) else list(configured or []))
    if not all(isinstance(u, str) for u in urls):
        raise ClientConfigError(f"[api] server_url in {where} must be a URL in quotes or a list of them.")
    if name == "mistral":
        if len(urls) > 1:
            raise ClientConfigError("several --server-url are for --backend openai only; the mistral backend "
                                    "takes one (or none, for the Mistral API).")
        return name, (resolve_endpoint(settings, urls[0] if urls else None),)
    if not urls:
        raise ClientConfigError(f"--backend openai needs --server-url (or [api] server_url in {where}): the "
                                "OpenAI-compatible server, e.g. a vLLM server at http://localhost:8000/v1.")
    key = api_key(var=OPENAI_KEY_VAR)  # a local server needs none: the client then sends a placeholder
    for url in urls:
        check_server_url(url)
    if len(set(urls)) < len(urls):
        raise ClientConfigError("the same --server-url is given twice: name each server once.")
    return name, tuple(Endpoint(url, key) for url in urls)


def check_server_url(url: str) -> None:
    """ClientConfigError unless url is http(s)://HOST[:PORT][/PATH]."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:  # a bad port or a broken [IPv6] host
        ok = False
    if not ok or any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ClientConfigError(f"server URL {url!r} is not usable: it must be http:// or https://, a host, an "
                                "optional port and path, with no spaces, e.g. http://localhost:8000")
