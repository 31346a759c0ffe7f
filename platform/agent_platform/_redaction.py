"""Secrets out of messages: one function, `redact_secrets`, that every layer applies to the text it
shows or stores when that text may carry a connection string or an upstream server's error body
(run store and vector store errors, model provider errors, a run result's `error`, SDK log lines).

What it masks (with `***`, keeping the text around it readable):

- the password of a URL's userinfo: `postgresql://user:***@host/db` (the password runs to the
  last `@` of the URL, so an unencoded `@` or `/` in it cannot end it early);
- the value of a secret-named setting, whatever the syntax: libpq `password=x` or
  `password='quoted \\' value'`, query parameters `?password=x&sslpassword=y`, `api_key=`,
  `access_token=`, headers `Authorization: Bearer x` and `x-api-key: x`, JSON or Python
  `"token": "x"`, environment-style `OPENAI_API_KEY=x`. In a query string the value ends at `&`
  or `#`; everywhere else it runs to the next whitespace (as libpq reads it) or closing quote;
- `Bearer <token>` wherever it appears;
- API keys recognisable by their shape: `sk-...` (OpenAI, Anthropic's `sk-ant-...`), `hf_...`,
  GitHub `ghp_...`/`github_pat_...`, Slack `xox?-...`, Google `AIza...`;
- any `known` secret given by the caller (the password of the URL it connected with, the API key
  it sent) wherever it is echoed, even in a shape none of the above recognises.

`passfile=` (libpq) names a file, not a secret, and stays visible: it is what a user needs to see
when that file cannot be read.

It runs several regular expressions over the whole text: it belongs on error paths, not on
every step.

`RedactingFilter` applies the same function to log records; `redact_loggers` attaches one shared
instance to third-party loggers (instructor, the model SDKs, httpx), whose lines are printed to
stderr by default and end up in Ray's worker logs when deployed.

This module imports nothing of the platform: every layer can use it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import unquote

MASK = "***"

# Shorter known secrets are not masked where they are echoed: masking every "abc" in a message
# would make it unreadable, and a three-character secret is no secret.
MIN_KNOWN_SECRET = 4

# The password of a URL's userinfo. The user part stops at the first `:`; the password runs to the
# last `@` before the next whitespace (the host part after it holds no `@`), so a password with an
# unencoded `@`, `/` or `:` is still masked whole. The scheme's length is bounded so that a long
# run of scheme characters cannot make the search quadratic.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^\s:/?#@]*):(?P<password>\S*)@(?P<host>[^\s@/?#]*)"
)

# `Authorization: Bearer x` (and Basic, Token, Digest; `Proxy-Authorization`): the scheme stays.
_AUTHORIZATION = re.compile(
    r"(?i)(?<![A-Za-z0-9/_-])(?P<name>(?:proxy-)?authorization[\"']?\s*[=:]\s*[\"']?)"
    r"(?P<scheme>(?:bearer|basic|token|digest)\s+)?(?P<value>[^\s\"',;]+)"
)

# A secret-named setting. The name may carry prefixes (`db_password`, `OPENAI_API_KEY`,
# `x-api-key`, `--password`) and may be quoted (JSON, Python reprs); `=` or `:` assigns. A name
# starts a word (not after a letter, digit, `_`, `-` or `/`): besides not matching inside other
# words, that keeps the search linear in the length of a long run of `a_b_c_...`. An error code
# followed by its message (`invalid_api_key: Incorrect API key provided`) names no secret.
_SECRET_NAME = (
    r"[_-]*(?:[A-Za-z0-9]+[_-]+)*"
    r"(?:password|passwd|sslpassword|pgpassword|secret|token|api[_-]?key|apikey"
    r"|access[_-]?key|secret[_-]?key|private[_-]?key)"
)
_SECRET_SETTING = re.compile(
    r"(?<![A-Za-z0-9/_-])"
    r"(?!(?:invalid|missing|expired|incorrect|revoked|unknown)[_-][A-Za-z0-9_-]*[\"']?\s*:)"
    r"(?P<name>" + _SECRET_NAME + r")(?P<close>[\"']?)(?P<sep>\s*[=:]\s*)"
    # quoted (libpq and Python escape with a backslash; an unclosed quote runs to the end), or bare
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|\S*)",
    re.IGNORECASE,
)

# `Bearer <token>` outside an `Authorization` header (a curl command line, a log line). Eight
# characters at least, so prose such as "invalid bearer token" keeps its words.
_BEARER = re.compile(r"(?i)(?<![A-Za-z0-9])(?P<scheme>bearer\s+)(?P<token>[A-Za-z0-9._~+/=-]{8,})")

# API keys by shape: prefix and a long enough tail of key characters.
_KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9_-])(?:sk-|hf_|gh[pousr]_|github_pat_|xox[abprs]-|AIza)[A-Za-z0-9_\-]{8,}"
)

_QUERY_VALUE_END = re.compile(r"[&#]")


def _in_query(match: re.Match[str]) -> bool:
    start = match.start()
    return start > 0 and match.string[start - 1] in "?&;"


def _mask_setting(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[:1] if value[:1] in ("'", '"') else ""
    rest = ""
    if not quote and _in_query(match):
        # A query parameter: its value ends at the next parameter or at the fragment.
        end = _QUERY_VALUE_END.search(value)
        if end is not None:
            rest = value[end.start() :]
    return f"{match.group('name')}{match.group('close')}{match.group('sep')}{quote}{MASK}{quote}{rest}"


def _usable(known: Iterable[str | None]) -> list[str]:
    found = {secret for secret in known if secret and len(secret) >= MIN_KNOWN_SECRET}
    return sorted(found, key=len, reverse=True)  # longest first: no secret left half-masked


def redact_secrets(text: str, known: Iterable[str | None] = ()) -> str:
    """`text` with every secret it carries masked (see the module docstring); `known` secrets are
    masked wherever they appear. Redacting a redacted text changes nothing."""
    for secret in _usable(known):
        if secret in text:
            text = text.replace(secret, MASK)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\g<head>:{MASK}@\g<host>", text)
    text = _AUTHORIZATION.sub(rf"\g<name>\g<scheme>{MASK}", text)
    text = _SECRET_SETTING.sub(_mask_setting, text)
    text = _BEARER.sub(rf"\g<scheme>{MASK}", text)
    return _KEY_SHAPES.sub(MASK, text)


def _unquoted_value(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in ("'", '"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def dsn_secrets(dsn: str) -> tuple[str, ...]:
    """The secrets a connection string carries (URL password, `password=` and other secret-named
    values), as written and decoded: what a driver might echo in its errors. Pass them as
    `known` to `redact_secrets` for those errors."""
    found: list[str] = []
    for match in _URL_PASSWORD.finditer(dsn):
        found.append(match.group("password"))
    for match in _SECRET_SETTING.finditer(dsn):
        value = match.group("value")
        if _in_query(match):
            value = _QUERY_VALUE_END.split(value, maxsplit=1)[0]
        found.append(value)
        found.append(_unquoted_value(value))
    decoded = [unquote(secret) for secret in found]
    return tuple(dict.fromkeys(secret for secret in [*found, *decoded] if secret and secret != MASK))


# --- logging ----------------------------------------------------------------------------------

# How many known secrets the shared log filter keeps: one per API key a process has used. The
# bound keeps a process that re-reads rotating keys from growing without end; the oldest go first
# (their shapes are still masked by pattern).
MAX_KNOWN_SECRETS = 64


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and in its traceback text (see `redact_secrets`),
    plus the secrets it was told about (`remember`). A record is rewritten only when something was
    masked: its arguments are merged into the message then, and its exception is replaced by the
    redacted traceback text (which formatters print as they would the exception's)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._known: dict[str, None] = {}
        self._snapshot: tuple[str, ...] = ()

    def remember(self, *secrets: str | None) -> None:
        """Also mask these (e.g. the API key a provider sends) wherever they appear."""
        with self._lock:
            for secret in secrets:
                if secret and len(secret) >= MIN_KNOWN_SECRET:
                    self._known.pop(secret, None)
                    self._known[secret] = None
            while len(self._known) > MAX_KNOWN_SECRETS:
                del self._known[next(iter(self._known))]
            self._snapshot = tuple(self._known)  # read without the lock by `filter`

    def filter(self, record: logging.LogRecord) -> bool:
        known = self._snapshot
        try:
            message = record.getMessage()
        except Exception:
            return True  # a malformed record: logging reports that itself
        redacted = redact_secrets(message, known)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info is not None and record.exc_info[0] is not None:
            trace = logging.Formatter().formatException(record.exc_info)
            clean = redact_secrets(trace, known)
            if clean != trace:
                record.exc_info, record.exc_text = None, clean
        elif record.exc_text:
            record.exc_text = redact_secrets(record.exc_text, known)
        return True


LOG_FILTER = RedactingFilter()  # one per process: loggers are process-wide too


def redact_loggers(names: Iterable[str], *, known: Iterable[str | None] = ()) -> None:
    """Attach `LOG_FILTER` to the named loggers and to every logger under them that exists now,
    and have it mask `known` too. A logger's filters apply only to records created on that logger
    (not to those its children propagate), hence the walk. Idempotent; call it after importing the
    library whose loggers it guards, so they exist."""
    LOG_FILTER.remember(*known)
    for logger in loggers_under(names):
        if LOG_FILTER not in logger.filters:
            logger.addFilter(LOG_FILTER)


def loggers_under(names: Iterable[str]) -> list[logging.Logger]:
    """The named loggers and every logger under them that exists now."""
    roots = tuple(names)
    prefixes = tuple(f"{name}." for name in roots)
    found = [logging.getLogger(name) for name in roots]
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith(prefixes) and isinstance(logger, logging.Logger):
            found.append(logger)
    return found
