"""The shared redaction (`agent_platform._redaction`): every form a connection string or an upstream
error body can carry a secret in, checked with random secrets (hypothesis); what is not a secret
stays readable; the log filter; and the module's place at the bottom of the layers."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tests.support.dsn import libpq_quoted

from agent_platform._redaction import (
    MASK,
    RedactingFilter,
    dsn_secrets,
    redact_loggers,
    redact_secrets,
)

# Any printable text (spaces, quotes, backslashes, `@`, `&`, `=`, non-ASCII included): what a
# password may be, written in a form that can carry it (percent-encoded, quoted and escaped).
ANY_SECRET = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x85\u2028\u2029"),
    min_size=4,
    max_size=40,
)
# What a password may be where the syntax allows it bare: no whitespace (which ends a libpq value
# or a URL) and none of libpq's quote and escape characters.
BARE_SECRET = ANY_SECRET.filter(lambda s: not any(c.isspace() or c in "'\\" for c in s))
TOKEN = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/", min_size=8, max_size=60
)
KEY_TAIL = st.text(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=20, max_size=60
)


def assert_hidden(redacted: str, *forms: str) -> None:
    for form in forms:
        assert form not in redacted, f"{form!r} is still in {redacted!r}"


def around(written: str, template: str, *also: str) -> str:
    """`template` with a secret `written` in the place of `{}`, provided neither that nor the
    other forms of the secret (`also`) happen to be a piece of the template itself (then "not in
    the output" could not hold)."""
    rest = template.replace("{}", MASK)
    assume(not any(form in rest or MASK in form for form in (written, *also)))
    return template.replace("{}", written)


# --- every form, random secrets ---------------------------------------------------------------


@given(ANY_SECRET)
def test_a_url_password_is_hidden_percent_encoded(password: str) -> None:
    encoded = quote(password, safe="")
    text = around(encoded, "run store postgresql://runner:{}@db.internal:5432/runs is unavailable", password)
    redacted = redact_secrets(text)
    assert_hidden(redacted, encoded, password)
    assert redacted == f"run store postgresql://runner:{MASK}@db.internal:5432/runs is unavailable"


@given(BARE_SECRET)
def test_a_url_password_is_hidden_even_unencoded(password: str) -> None:
    # `@`, `/`, `:` and `?` written raw in the password: the password runs to the URL's last `@`.
    text = around(password, "postgresql://runner:{}@db:5432/runs")
    assert_hidden(redact_secrets(text), password)


@given(ANY_SECRET, st.sampled_from(["password", "sslpassword", "PASSWORD"]))
def test_a_libpq_key_value_secret_is_hidden_quoted(password: str, key: str) -> None:
    written = libpq_quoted(password)
    text = around(written, f"host=db port=5432 {key}={{}} user=runner dbname=runs", password)
    redacted = redact_secrets(text)
    assert_hidden(redacted, written, password)
    assert redacted == f"host=db port=5432 {key}='{MASK}' user=runner dbname=runs"


@given(BARE_SECRET, st.sampled_from(["password=", "password = ", "sslpassword="]))
def test_a_libpq_key_value_secret_is_hidden_bare(password: str, assignment: str) -> None:
    text = around(password, f"connection to host=db {assignment}{{}} user=runner failed")
    redacted = redact_secrets(text)
    assert_hidden(redacted, password)
    if not password.startswith('"'):  # else read as a quoted value: all of the rest is hidden
        assert redacted == f"connection to host=db {assignment}{MASK} user=runner failed"


@given(
    ANY_SECRET,
    st.sampled_from(["password", "sslpassword", "api_key", "token", "access_token", "client_secret"]),
    st.sampled_from(["?", "?sslmode=require&"]),
)
def test_a_query_parameter_secret_is_hidden(secret: str, name: str, before: str) -> None:
    encoded = quote(secret, safe="")
    text = around(encoded, f"https://db.internal/runs{before}{name}={{}}&application_name=ap#top", secret)
    redacted = redact_secrets(text)
    assert_hidden(redacted, encoded, secret)
    assert redacted == f"https://db.internal/runs{before}{name}={MASK}&application_name=ap#top"


@given(TOKEN, st.sampled_from(["Bearer", "bearer", "Basic", "Token"]))
def test_an_authorization_header_is_hidden(token: str, scheme: str) -> None:
    for text in (
        around(token, f"Authorization: {scheme} {{}}\r\nAccept: */*"),
        around(token, f"{{'authorization': '{scheme} {{}}', 'accept': '*/*'}}"),
    ):
        redacted = redact_secrets(text)
        assert_hidden(redacted, token)
        assert f"{scheme} {MASK}" in redacted and "ccept" in redacted


@given(TOKEN)
def test_a_bearer_token_is_hidden_anywhere(token: str) -> None:
    assert_hidden(redact_secrets(around(token, "curl -H 'X: Bearer {}' https://api")), token)


@given(KEY_TAIL, st.sampled_from(["sk-", "sk-ant-api03-", "sk-proj-", "hf_", "ghp_", "AIza"]))
def test_api_keys_are_hidden_by_their_shape(tail: str, prefix: str) -> None:
    key = prefix + tail
    body = {"error": {"message": f"Incorrect API key provided: {key}.", "type": "invalid_request_error"}}
    for text in (json.dumps(body), f"Error code: 401 - {body!r}"):
        redacted = redact_secrets(text)
        assert_hidden(redacted, key, tail)
        assert "Incorrect API key provided" in redacted


@given(ANY_SECRET, st.sampled_from(['"api_key": ', "'password': ", '"x-api-key": ']))
def test_json_and_python_mappings_hide_secret_values(secret: str, key: str) -> None:
    written = json.dumps(secret)
    redacted = redact_secrets(around(written, f'{{"user": "runner", {key}{{}}, "n": 1}}', secret))
    assert_hidden(redacted, written, secret)
    assert '"user": "runner"' in redacted and '"n": 1' in redacted


@given(ANY_SECRET)
def test_a_known_secret_is_hidden_wherever_it_is_echoed(secret: str) -> None:
    text = around(secret, "the server said: {} is not a valid key ({})")
    assert_hidden(redact_secrets(text, known=[secret]), secret)


@given(st.text(max_size=200), ANY_SECRET)
def test_redacting_twice_changes_nothing(text: str, secret: str) -> None:
    once = redact_secrets(f"{text} password={libpq_quoted(secret)} {text}")
    assert redact_secrets(once) == once


@settings(max_examples=50)
@given(ANY_SECRET)
def test_the_secrets_of_a_dsn_include_what_a_driver_would_echo(password: str) -> None:
    url = f"postgresql://runner:{quote(password, safe='')}@db/runs"
    assert password in dsn_secrets(url)
    assert password in dsn_secrets(f"host=db password={libpq_quoted(password)}")
    assert password in dsn_secrets(f"postgresql://db/runs?sslpassword={quote(password, safe='')}")


# --- what is not a secret stays -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "sqlite:///var/lib/platform/runs.sqlite3",
        "postgresql://runner@db:5432/runs?sslmode=require",
        "http://127.0.0.1:8080/v1 refused the connection",
        "host=db user=runner passfile=/home/runner/.pgpass dbname=runs",  # a path, not a secret
        "max_tokens=256 token_budget: 3 tokens: 5 idempotency key 'a=b'",
        'password authentication failed for user "runner"',
        "HTTP 401 authentication_error: invalid bearer token",
        "the API refused the credentials (HTTP 401 invalid_api_key: Incorrect API key provided: ***)",
        "expired_token: the session has expired",
        "model call failed: anthropic:claude: rate limited (HTTP 429 rate_limit_error: slow down)",
    ],
)
def test_what_is_not_a_secret_is_left_as_it_is(text: str) -> None:
    assert redact_secrets(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://user:pa%40ss@db:5432/runs", "postgresql://user:***@db:5432/runs"),
        ("postgresql://db/runs?user=u&password=hunter2", "postgresql://db/runs?user=u&password=***"),
        ("host=db password='it\\'s' user=x", "host=db password='***' user=x"),
        (
            "OPENAI_API_KEY=abc123def x-api-key: zz99 --password=p4ss",
            "OPENAI_API_KEY=*** x-api-key: *** --password=***",
        ),
        (
            "https://api.example.com/v1?key=AIzaSyA0123456789&token=t0k3n",
            "https://api.example.com/v1?key=***&token=***",
        ),
    ],
)
def test_examples(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected


def test_a_long_run_of_name_like_words_is_redacted_in_linear_time() -> None:
    # A regular expression with nested repetition can backtrack quadratically on such input; the
    # patterns are written so that it cannot. (A quadratic search would take minutes here.)
    text = "a_" * 200_000 + " " + "x.y" * 100_000 + "://" + " password=hunter2"
    assert redact_secrets(text).endswith("password=***")


# --- logs ---------------------------------------------------------------------------------------


def test_the_log_filter_redacts_message_arguments_and_tracebacks() -> None:
    secret = "not-shaped-like-a-key-42"
    log_filter = RedactingFilter()
    log_filter.remember(secret)
    try:
        raise RuntimeError(
            f"Error code: 401 - {{'message': 'bad key {secret}'}} at postgresql://u:hunter2@db/x"
        )
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "instructor.v2.retry",
        logging.ERROR,
        __file__,
        1,
        "API call failed: %s (%s)",
        (f"key {secret}", "Authorization: Bearer abcdefghijk"),
        exc_info,
    )
    assert log_filter.filter(record)
    rendered = logging.Formatter().format(record)
    assert_hidden(rendered, secret, "hunter2", "abcdefghijk")
    assert "API call failed: key ***" in rendered and "RuntimeError" in rendered


def test_a_record_with_nothing_to_hide_is_left_alone() -> None:
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "HTTP Request: %s %s", ("POST", "/v1"), None
    )
    assert RedactingFilter().filter(record)
    assert record.args == ("POST", "/v1") and record.msg == "HTTP Request: %s %s"


def test_redact_loggers_covers_the_children_that_exist(caplog: pytest.LogCaptureFixture) -> None:
    child = logging.getLogger("ap-test-sdk.deep.module")
    redact_loggers(["ap-test-sdk"], known=["a-known-secret-77"])
    redact_loggers(["ap-test-sdk"])  # idempotent: one filter per logger
    assert child.filters.count(child.filters[0]) == 1
    with caplog.at_level(logging.WARNING):
        child.warning("failed with a-known-secret-77 and password=hunter2")
    assert "a-known-secret-77" not in caplog.text and "hunter2" not in caplog.text


# --- layering -----------------------------------------------------------------------------------


def test_the_bottom_layer_modules_import_nothing_of_the_platform() -> None:
    code = (
        "import sys, agent_platform._redaction, agent_platform._state_files; "
        "print(sorted(m for m in sys.modules if m.startswith('agent_platform')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(
        sorted(["agent_platform", "agent_platform._redaction", "agent_platform._state_files"])
    )
