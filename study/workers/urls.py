"""Where a study's storage is (--storage, $CMI_STORAGE, or a SQLite file under reports/), and
its URL as it may be shown: printed, stored and reported with its secrets masked."""

import os
import re
from pathlib import Path

import sqlalchemy

from cmi_model.errors import InputError

REPORTS_DIR = Path("reports")


# The storage URL when --storage is not given: from the environment, so that a password never
# sits in a command line (readable by anyone with `ps` on a shared node).
STORAGE_ENV = "CMI_STORAGE"


def default_url(study_name: str) -> str:
    return f"sqlite:///{REPORTS_DIR / study_name}.db"


def resolve_url(given: str | None, study_name: str) -> str:
    """--storage, else $CMI_STORAGE, else the study's own SQLite file under reports/; a server URL
    that cannot be read one way only is refused (check_unambiguous)."""
    url = given or os.environ.get(STORAGE_ENV) or default_url(study_name)
    check_unambiguous(url)
    return url


def check_unambiguous(url: str) -> None:
    """A server URL with a second "@" or a "#" in it: a password that was not percent-encoded, which
    a parser would split at the wrong place and then echo a piece of (as a host name, say). Refused
    in one line that shows no part of it."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.startswith("sqlite"):
        return  # a SQLite path may hold any character; it has no user info
    if rest.count("@") > 1 or "#" in rest:
        raise InputError(
            f"{origin(url)}: the storage URL holds an unencoded '@' or '#' (percent-encode them in a "
            "password: %40, %23); the URL is not shown, it may hold a password"
        )


def origin(url: str) -> str:
    """Where the user gave url, for error lines: the option or the environment variable."""
    return STORAGE_ENV if url == os.environ.get(STORAGE_ENV) else "--storage"


# The one place secrets are masked: the driver (printed URLs, the stored command line) and the
# report share it. A URL carries them as user info (user:password@) or as query parameters
# (libpq's password, sslpassword, passfile, ...).
SECRET_PARAMS = re.compile(r"pass|secret|token|sslkey", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^\s:/@]*:)[^\s@]*@")
_QUERY_SECRET = re.compile(
    r"([?&][^=&\s'\"]*(?:pass|secret|token|sslkey)[^=&\s'\"]*=)[^&\s'\"]*", re.IGNORECASE
)


def redact(text: str) -> str:
    """Hide the secrets of any URL inside a string (e.g. a command line): the password of
    ``scheme://user:password@host`` and the values of secret query parameters."""
    return _QUERY_SECRET.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def safe_url(url: str) -> str:
    """The URL with its secrets masked: the only form that is printed or stored."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError, TypeError):
        return redact(url)  # unparseable, but may still carry a password
    query = {k: ("***" if SECRET_PARAMS.search(k) else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)
