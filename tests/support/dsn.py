"""Connection strings carrying a password in each form PostgreSQL accepts, for the tests that check
that no error or output of the run store or the vector store ever shows it."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from hypothesis import assume
from hypothesis import strategies as st

# What a password may be: any printable text (spaces, quotes, backslashes, `@`, `&`, `=`,
# non-ASCII included), long enough to be told apart from the text around it.
PASSWORDS = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x85\u2028\u2029"),
    min_size=6,
    max_size=30,
)


def libpq_quoted(value: str) -> str:
    """`value` as a quoted libpq key=value value (backslash escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


DSN_FORMS: dict[str, Callable[[str], str]] = {
    "url-userinfo": lambda pw: f"postgresql://runner:{quote(pw, safe='')}@db:5432/runs",
    "key-value": lambda pw: f"host=db port=5432 password={libpq_quoted(pw)} user=runner",
    "query-password": lambda pw: f"postgresql://runner@db/runs?password={quote(pw, safe='')}",
    "query-sslpassword": (
        lambda pw: f"postgresql://runner@db/runs?sslmode=require&sslpassword={quote(pw, safe='')}&x=1"
    ),
}


def dsn_with(password: str, form: str) -> str:
    """The connection string of `form` carrying `password`, provided the password does not
    happen to be a piece of the rest of it (then "not shown" could not hold)."""
    assume("***" not in password and password not in DSN_FORMS[form]("\0"))
    return DSN_FORMS[form](password)
