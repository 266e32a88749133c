"""The errors the SDK raises on purpose. Each has a ``code`` to branch on."""

import builtins


class PeapodError(Exception):
    """Base of every error of the SDK; ``code`` says what failed."""

    def __init__(self, code: str, message: str):
        super().__init__(f"peapod: {message}")
        self.code = code


class DescriptorError(PeapodError):
    """A provider's descriptor was refused, or could not be fetched.

    Codes: ``signature`` (every signature failure), ``key_mismatch`` (signed
    by another key than the pinned one), ``key_changed`` (another key than
    the one remembered from an earlier use), ``network_mismatch`` (it names
    another network than the directory you use), ``expired``,
    ``not_yet_valid``, ``malformed``, ``fetch``, ``other_authorities``
    (AuthoritiesMismatchError). The first five are those of the shared test
    vectors (framework/descriptor/testdata/vectors.json).
    """


class AuthoritiesMismatchError(DescriptorError):
    """A descriptor whose network names other directory authorities than the trusted ones.

    Its code is ``other_authorities``: the descriptor's network names other
    keys than ``discover(authorities=...)``, or a lower threshold; with them,
    whoever substituted the descriptor would choose the topology, and so the
    routes. ``trusted`` and ``published`` are base58 keys, sorted;
    ``trusted_threshold`` and ``published_threshold`` the signatures each requires.
    """

    def __init__(self, provider: str, trusted, trusted_threshold: int, published, published_threshold: int):
        super().__init__(
            "other_authorities",
            f"THE PROVIDER'S NETWORK IS NOT YOURS: the descriptor of {provider} names the directory authorities "
            f"{','.join(published)} ({published_threshold} of them must sign), and you trust {','.join(trusted)} "
            f"({trusted_threshold} of them must sign). A descriptor substituted on the way looks like this; "
            "if the network changed its authorities, check them with its operator.")
        self.provider = provider
        self.trusted, self.trusted_threshold = list(trusted), trusted_threshold
        self.published, self.published_threshold = list(published), published_threshold


class ProviderError(PeapodError):
    """A failure the provider answered with.

    ``code`` is its error code (bad_request, unknown_service,
    handler_failed, timeout, overloaded, too_large, or a service's own such
    as not_found) and ``detail`` its message.
    """

    def __init__(self, code: str, detail: str):
        super().__init__(code, f"the provider answered {code}" + (f": {detail}" if detail else ""))
        self.detail = detail


class TooLargeError(PeapodError):
    """A request refused before sending: longer than the provider accepts.

    Its code is ``too_large``, as the provider's own answer would be.
    """

    def __init__(self, size: int, limit: int):
        super().__init__("too_large", f"the request is {size} bytes, more than the provider's limit of {limit}")
        self.size, self.limit = size, limit


class NoReplyError(PeapodError):
    """No reply came within the call's timeout (code ``no_reply``)."""

    def __init__(self, timeout: float):
        super().__init__("no_reply", f"no reply within {timeout:g} s")
        self.timeout = timeout


class ConnectionError(PeapodError, builtins.ConnectionError):  # noqa: A001 - mirrors the TypeScript SDK
    """The WebSocket to the mixnet client failed or closed (code ``connection``).

    It is also a builtin ``ConnectionError``.
    """

    def __init__(self, message: str):
        super().__init__("connection", message)
