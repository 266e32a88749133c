"""Trust on first use: remembering a provider's key, so that a substituted
descriptor is refused later."""

import json
import os
import tempfile
from typing import Dict, Optional
from urllib.parse import urlsplit


def provider_id(url: str) -> str:
    """The name a provider URL is remembered under, the same in every peapod
    tool: scheme and host in lower case, the port unless it is the scheme's
    default, the path without a trailing slash; no query, no fragment."""
    u = urlsplit(url)
    host = (u.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = u.port
    if port is not None and not (u.scheme == "http" and port == 80 or u.scheme == "https" and port == 443):
        host += f":{port}"
    return f"{u.scheme.lower()}://{host}{u.path.rstrip('/')}"


class MemoryTrustStore:
    """Remembers keys for the life of the object."""

    where = "memory"

    def __init__(self):
        self._keys: Dict[str, str] = {}

    def get(self, provider: str) -> Optional[str]:
        return self._keys.get(provider)

    def set(self, provider: str, key: str) -> None:
        self._keys[provider] = key


class FileTrustStore:
    """Keeps remembered keys in a JSON file, the format the Go client keeps in
    its data folder (known_providers.json)::

        {"v":1,"providers":{"http://127.0.0.1:8080":"<base58 key>"}}

    written atomically with mode 0600.
    """

    def __init__(self, path: str):
        self.where = path

    def get(self, provider: str) -> Optional[str]:
        return self._read().get(provider)

    def set(self, provider: str, key: str) -> None:
        providers = self._read()
        providers[provider] = key
        folder = os.path.dirname(self.where) or "."
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".known_providers-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"v": 1, "providers": providers}, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.where)
        except BaseException:
            os.unlink(tmp)
            raise

    def _read(self) -> Dict[str, str]:
        try:
            with open(self.where) as f:
                v = json.load(f)
        except FileNotFoundError:
            return {}
        if not isinstance(v, dict) or v.get("v") != 1 or not isinstance(v.get("providers"), dict):
            raise ValueError(f"peapod: {self.where} is not a file of known provider keys")
        return dict(v["providers"])
