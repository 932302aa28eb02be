"""Credentials: an account's name, and the tokens of a token provider.

An ``api_key`` is a key (a ``str``) or a token provider: a callable that returns a key,
or an awaitable of one (a user's OAuth token, refreshed as it expires). A provider is
asked for each attempt of a call once its turn has come, so it must cache; its tokens
change, the account does not, and the budget belongs to the account.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable

from . import _sansio
from ._exceptions import TokenProviderError

TokenProvider = Callable[[], str | Awaitable[str]]
"""A callable that returns the current token, or an awaitable of it."""

ApiKey = str | TokenProvider

# Names live in logs, journals, CSV columns, dotenv files and Redis keys (inside a
# Cluster hash tag, so no braces): a conservative alphabet suits them all.
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}")


def checked_account(name: object) -> str:
    """``name``, when it can name an account.

    Raises:
        ValueError: it is not 1 to 128 letters, digits and ``_ . @ -`` (not first: ``.``,
            ``@``, ``-``).
    """
    if isinstance(name, str) and _ACCOUNT_NAME.fullmatch(name):
        return name
    raise ValueError(
        "an account name must be 1 to 128 letters, digits, '_', '.', '@' or '-' (starting"
        f" with a letter, a digit or '_'), got {name!r}"
    )


def checked_api_key(api_key: object) -> ApiKey:
    """``api_key``, when it is a key that can be sent or a token provider.

    Raises:
        ValueError: a key that holds a space, a control character or a non-ASCII
            character (never shown), or something that is neither a key nor callable.
    """
    if callable(api_key):
        return api_key
    return _sansio.checked_api_key(api_key)


def described(account: str | None) -> str:
    """How messages name an account."""
    return "this client" if account is None else f"account {account!r}"


class Tokens:
    """The tokens of one account's provider, and the redactor that clears the latest.

    ``token()`` asks the provider: it is awaited for each attempt, once the attempt's
    turn has come. The redactor clears the last two tokens handed over, so an answer to a
    request sent just before a refresh is cleared of the token it was sent with.
    """

    __slots__ = ("_account", "_provider", "_recent", "redactor")

    def __init__(self, provider: TokenProvider, account: str | None) -> None:
        self._provider = provider
        self._account = account
        self._recent: tuple[str, ...] = ()
        self.redactor = _sansio.Redactor()

    async def token(self) -> str:
        """The provider's token now.

        Raises:
            TokenProviderError: the provider raised, or handed over something that
                cannot be sent as a key.
        """
        try:
            token = self._provider()
            if inspect.isawaitable(token):
                token = await token
        except Exception as error:
            # Neither its message nor the error itself (as a cause, a traceback would
            # show it, and OpenTelemetry records tracebacks): a provider's error may
            # hold a token (a refresh URL, a response body), and only the tokens handed
            # over before are known here.
            raise TokenProviderError(
                f"the token provider of {described(self._account)} raised"
                f" {type(error).__name__} (its message is not repeated: it may hold a"
                " token)",
                account=self._account,
            ) from None
        if not isinstance(token, str):
            raise TokenProviderError(
                f"the token provider of {described(self._account)} handed over"
                f" {_a(type(token).__name__)}, not a str",
                account=self._account,
            )
        try:
            _sansio.checked_api_key(token, "a token")
        except ValueError as error:
            raise TokenProviderError(
                f"the token provider of {described(self._account)} handed over a str"
                f" that cannot be sent: {error}",
                account=self._account,
            ) from None
        if token not in self._recent:
            self._recent = (token, *self._recent[:1])
            self.redactor.use(*self._recent)
        return token

    def too_slow(self, seconds: float) -> TokenProviderError:
        """The error of a provider that handed over nothing within ``seconds``."""
        return TokenProviderError(
            f"the token provider of {described(self._account)} handed over no token"
            f" within {seconds:g} s",
            account=self._account,
        )


def _a(noun: str) -> str:
    return f"an {noun}" if noun[:1].lower() in "aeiou" else f"a {noun}"
