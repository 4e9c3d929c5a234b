"""Settings: read from AMPLITUDE_* variables or built in code, validated, keys never shown."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from otel_amplitude._settings import ConfigWarning, Settings, configuration_reference
from otel_amplitude.exceptions import ConfigError

DOCS_FILE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

ALL_VARIABLES = [env for env, _ in Settings().describe()]
INTEGERS = {
    # variable: (field, lowest, highest)
    "AMPLITUDE_FLUSH_INTERVAL_MS": ("flush_interval_ms", 1, 3_600_000),
    "AMPLITUDE_FLUSH_MAX_EVENTS": ("flush_max_events", 1, 2000),
    "AMPLITUDE_SENDERS": ("senders", 1, 64),
    "AMPLITUDE_PARTITION_CAPACITY": ("partition_capacity", 1, 10_000_000),
    "AMPLITUDE_MAX_BUFFERED_EVENTS": ("max_buffered_events", 1, 100_000_000),
    "AMPLITUDE_TIMEOUT_MS": ("timeout_ms", 1, 600_000),
    "AMPLITUDE_MAX_RETRIES": ("max_retries", 0, 1000),
    "AMPLITUDE_MIN_ID_LENGTH": ("min_id_length", 1, 1024),
    "AMPLITUDE_SHUTDOWN_TIMEOUT_MS": ("shutdown_timeout_ms", 0, 600_000),
}
BOOLEANS = {"AMPLITUDE_USE_BATCH": "use_batch", "AMPLITUDE_ENABLED": "enabled"}
KEYS = {
    "AMPLITUDE_API_KEY": "api_key",
    "AMPLITUDE_SECRET_KEY": "secret_key",
    "AMPLITUDE_PII_SALT": "pii_salt",
}
URL_RULE = (
    "must be an http or https URL with a host, an optional port and path prefix,"
    " and no query or fragment"
)
BOOLEAN_RULE = "must be true or false (also 1/0, yes/no, on/off)"
PII_KEYS = (
    "email", "phone", "phone_number", "mobile", "password", "ssn", "card_number", "iban",
    "ip_address",
)  # fmt: skip
REDIS_RULE = "must be a redis:// or rediss:// URL such as 'redis://localhost:6379/0'"
API_KEY = "0123456789abcdef0123456789abcdef"
SECRET_KEY = "fedcba9876543210fedcba9876543210"


def from_env(**environ: str) -> Settings:
    return Settings.from_env(environ)


def error_of(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ)
    return str(caught.value)


# --- Defaults --------------------------------------------------------------------------------


def test_defaults_are_the_documented_values() -> None:
    settings = Settings()

    assert settings == Settings.from_env({})
    assert dataclasses.asdict(settings) == {
        "api_key": None,
        "secret_key": None,
        "server_zone": "US",
        "server_url": None,
        "use_batch": False,
        "flush_interval_ms": 1000,
        "flush_max_events": 1000,
        "senders": 4,
        "partition_capacity": 5000,
        "max_buffered_events": 100_000,
        "overflow": "drop_newest",
        "timeout_ms": 10_000,
        "max_retries": 12,
        "min_id_length": None,
        "enabled": True,
        "event_prefix": "",
        "log_include_logger": False,
        "span_events": (),
        "send_ip": False,
        "consent_mode": "opt_out",
        "consent_db": None,
        "consent_redis_url": None,
        "pii": "redact",
        "pii_keys": PII_KEYS,
        "pii_salt": None,
        "shutdown_timeout_ms": 2000,
        "destinations_file": None,
        "tenant_attribute": None,
        "unknown_tenant": "drop",
        "destination_max_buffered_events": None,
        "spool_dir": None,
        "spool_sync_ms": 200,
        "spool_max_mb": 1024,
    }


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("AMPLITUDE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AMPLITUDE_SENDERS", "7")

    assert Settings.from_env().senders == 7


@pytest.mark.parametrize("variable", ALL_VARIABLES)
@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_an_empty_variable_means_unset(variable: str, blank: str) -> None:
    assert Settings.from_env({variable: blank}) == Settings()


def test_every_variable_is_named_after_its_field() -> None:
    for field in dataclasses.fields(Settings):
        assert f"AMPLITUDE_{field.name.upper()}" in ALL_VARIABLES


# --- Every variable is read ------------------------------------------------------------------

VALID: list[tuple[str, str, str, object]] = [
    # (variable, text, field, value)
    ("AMPLITUDE_API_KEY", API_KEY, "api_key", API_KEY),
    ("AMPLITUDE_API_KEY", f"  {API_KEY}\n", "api_key", API_KEY),
    ("AMPLITUDE_SECRET_KEY", SECRET_KEY, "secret_key", SECRET_KEY),
    ("AMPLITUDE_SERVER_ZONE", "EU", "server_zone", "EU"),
    ("AMPLITUDE_SERVER_ZONE", " eu ", "server_zone", "EU"),
    ("AMPLITUDE_SERVER_ZONE", "us", "server_zone", "US"),
    ("AMPLITUDE_SERVER_URL", "http://127.0.0.1:8080", "server_url", "http://127.0.0.1:8080"),
    ("AMPLITUDE_SERVER_URL", "https://proxy.example.com/amp/", "server_url",
     "https://proxy.example.com/amp"),
    ("AMPLITUDE_SERVER_URL", "http://[::1]:9000/", "server_url", "http://[::1]:9000"),
    ("AMPLITUDE_USE_BATCH", "true", "use_batch", True),
    ("AMPLITUDE_USE_BATCH", "off", "use_batch", False),
    ("AMPLITUDE_FLUSH_INTERVAL_MS", "250", "flush_interval_ms", 250),
    ("AMPLITUDE_FLUSH_MAX_EVENTS", "2000", "flush_max_events", 2000),
    ("AMPLITUDE_SENDERS", " 16 ", "senders", 16),
    ("AMPLITUDE_PARTITION_CAPACITY", "10000", "partition_capacity", 10_000),
    ("AMPLITUDE_MAX_BUFFERED_EVENTS", "1000000", "max_buffered_events", 1_000_000),
    ("AMPLITUDE_OVERFLOW", "drop_oldest", "overflow", "drop_oldest"),
    ("AMPLITUDE_OVERFLOW", "DROP_NEWEST", "overflow", "drop_newest"),
    ("AMPLITUDE_TIMEOUT_MS", "30000", "timeout_ms", 30_000),
    ("AMPLITUDE_MAX_RETRIES", "0", "max_retries", 0),
    ("AMPLITUDE_MIN_ID_LENGTH", "1", "min_id_length", 1),
    ("AMPLITUDE_ENABLED", "no", "enabled", False),
    ("AMPLITUDE_SHUTDOWN_TIMEOUT_MS", "0", "shutdown_timeout_ms", 0),
    ("AMPLITUDE_EVENT_PREFIX", "acme_", "event_prefix", "acme_"),
    ("AMPLITUDE_LOG_INCLUDE_LOGGER", "true", "log_include_logger", True),
    ("AMPLITUDE_SPAN_EVENTS", "checkout.*, report_*", "span_events", ("checkout.*", "report_*")),
    ("AMPLITUDE_SEND_IP", "on", "send_ip", True),
    ("AMPLITUDE_CONSENT_MODE", "OPT_IN", "consent_mode", "opt_in"),
    ("AMPLITUDE_CONSENT_MODE", "opt_out", "consent_mode", "opt_out"),
    ("AMPLITUDE_CONSENT_DB", " /var/lib/app/consent.db ", "consent_db", "/var/lib/app/consent.db"),
    ("AMPLITUDE_CONSENT_REDIS_URL", "redis://localhost:6379/0", "consent_redis_url",
     "redis://localhost:6379/0"),
    ("AMPLITUDE_CONSENT_REDIS_URL", "rediss://:s3cret@cache.example.com:6380", "consent_redis_url",
     "rediss://:s3cret@cache.example.com:6380"),
    ("AMPLITUDE_PII", " Redact ", "pii", "redact"),
    ("AMPLITUDE_PII", "off", "pii", "off"),
    ("AMPLITUDE_PII_KEYS", "Email, Home_Address,phone", "pii_keys",
     ("email", "home_address", "phone")),
    ("AMPLITUDE_PII_SALT", SECRET_KEY, "pii_salt", SECRET_KEY),
    ("AMPLITUDE_DESTINATIONS_FILE", f" {__file__} ", "destinations_file", __file__),
    ("AMPLITUDE_TENANT_ATTRIBUTE", "tenant.id", "tenant_attribute", "tenant.id"),
    ("AMPLITUDE_UNKNOWN_TENANT", "Default", "unknown_tenant", "default"),
    ("AMPLITUDE_DESTINATION_MAX_BUFFERED_EVENTS", "5000", "destination_max_buffered_events", 5000),
    ("AMPLITUDE_SPOOL_DIR", " /var/spool/app ", "spool_dir", "/var/spool/app"),
    ("AMPLITUDE_SPOOL_SYNC_MS", "50", "spool_sync_ms", 50),
    ("AMPLITUDE_SPOOL_MAX_MB", "64", "spool_max_mb", 64),
]  # fmt: skip


@pytest.mark.parametrize(("variable", "text", "field", "value"), VALID)
def test_from_env_reads_each_variable(variable: str, text: str, field: str, value: object) -> None:
    settings = Settings.from_env({variable: text})

    assert getattr(settings, field) == value
    assert dataclasses.replace(settings, **{field: getattr(Settings(), field)}) == Settings()


def test_every_variable_has_a_reading_case() -> None:
    assert {variable for variable, *_ in VALID} == set(ALL_VARIABLES)


@pytest.mark.parametrize("variable", BOOLEANS)
@pytest.mark.parametrize(
    ("text", "value"),
    [
        *[(word, True) for word in ["true", "TRUE", "True", "1", "yes", "Yes", "on", " ON "]],
        *[(word, False) for word in ["false", "FALSE", "0", "no", "NO", "off", "\tOff\n"]],
    ],
)
def test_booleans_accept_the_usual_words_in_any_case(variable: str, text: str, value: bool) -> None:
    assert getattr(Settings.from_env({variable: text}), BOOLEANS[variable]) is value


@given(data=st.data())
def test_any_integer_in_range_round_trips_through_its_variable(data: st.DataObject) -> None:
    variable = data.draw(st.sampled_from(sorted(INTEGERS)))
    field, low, high = INTEGERS[variable]
    number = data.draw(st.integers(low, high))
    padding = data.draw(st.sampled_from(["", " ", "\t", "\n "]))

    settings = Settings.from_env({variable: f"{padding}{number}{padding}"})

    assert getattr(settings, field) == number
    assert (variable, str(number)) in settings.describe()


@given(data=st.data())
def test_any_integer_out_of_range_is_refused(data: st.DataObject) -> None:
    variable = data.draw(st.sampled_from(sorted(INTEGERS)))
    _, low, high = INTEGERS[variable]
    number = data.draw(st.integers(max_value=low - 1) | st.integers(min_value=high + 1))

    message = error_of({variable: str(number)})

    assert message == (f"{variable} must be an integer from {low} to {high}, got {str(number)!r}")


@given(text=st.text())
def test_any_zone_other_than_us_or_eu_is_refused(text: str) -> None:
    assume(text.strip().casefold() not in {"us", "eu", ""})

    assert error_of({"AMPLITUDE_SERVER_ZONE": text}).startswith(
        "AMPLITUDE_SERVER_ZONE must be 'US' or 'EU', got "
    )


# --- Every variable's invalid values are refused, naming it ----------------------------------

INVALID: list[tuple[str, str, str]] = [
    # (variable, text, the error message)
    ("AMPLITUDE_API_KEY", "abc def", "AMPLITUDE_API_KEY must not contain whitespace"),
    ("AMPLITUDE_API_KEY", "clé-secrète",
     "AMPLITUDE_API_KEY must contain only printable ASCII characters"),
    ("AMPLITUDE_SECRET_KEY", "abc\tdef", "AMPLITUDE_SECRET_KEY must not contain whitespace"),
    ("AMPLITUDE_SECRET_KEY", "abc\x00def",
     "AMPLITUDE_SECRET_KEY must contain only printable ASCII characters"),
    ("AMPLITUDE_SERVER_ZONE", "eu-west",
     "AMPLITUDE_SERVER_ZONE must be 'US' or 'EU', got 'eu-west'"),
    ("AMPLITUDE_SERVER_ZONE", "DE", "AMPLITUDE_SERVER_ZONE must be 'US' or 'EU', got 'DE'"),
    ("AMPLITUDE_SERVER_URL", "ftp://example.com",
     f"AMPLITUDE_SERVER_URL {URL_RULE}, got 'ftp://example.com'"),
    ("AMPLITUDE_SERVER_URL", "example.com", f"AMPLITUDE_SERVER_URL {URL_RULE}, got 'example.com'"),
    ("AMPLITUDE_SERVER_URL", "http://", f"AMPLITUDE_SERVER_URL {URL_RULE}, got 'http://'"),
    ("AMPLITUDE_SERVER_URL", "http://:8080", f"AMPLITUDE_SERVER_URL {URL_RULE}, got 'http://:8080'"),
    ("AMPLITUDE_SERVER_URL", "http://h/?a=1", f"AMPLITUDE_SERVER_URL {URL_RULE}, got 'http://h/?a=1'"),
    ("AMPLITUDE_SERVER_URL", "http://h/?", f"AMPLITUDE_SERVER_URL {URL_RULE}, got 'http://h/?'"),
    ("AMPLITUDE_SERVER_URL", "http://h/#top", f"AMPLITUDE_SERVER_URL {URL_RULE}, got 'http://h/#top'"),
    ("AMPLITUDE_SERVER_URL", "http://h:99999",
     f"AMPLITUDE_SERVER_URL {URL_RULE}, got 'http://h:99999'"),
    ("AMPLITUDE_SERVER_URL", "http://h:port", f"AMPLITUDE_SERVER_URL {URL_RULE}, got 'http://h:port'"),
    ("AMPLITUDE_SERVER_URL", "http://h /x", f"AMPLITUDE_SERVER_URL {URL_RULE}, got 'http://h /x'"),
    ("AMPLITUDE_SERVER_URL", "https://user:hunter2@proxy.example.com",
     "AMPLITUDE_SERVER_URL must not contain a user name or password"),
    ("AMPLITUDE_USE_BATCH", "maybe", f"AMPLITUDE_USE_BATCH {BOOLEAN_RULE}, got 'maybe'"),
    ("AMPLITUDE_USE_BATCH", "y", f"AMPLITUDE_USE_BATCH {BOOLEAN_RULE}, got 'y'"),
    ("AMPLITUDE_ENABLED", "enabled", f"AMPLITUDE_ENABLED {BOOLEAN_RULE}, got 'enabled'"),
    ("AMPLITUDE_ENABLED", "2", f"AMPLITUDE_ENABLED {BOOLEAN_RULE}, got '2'"),
    ("AMPLITUDE_FLUSH_INTERVAL_MS", "0",
     "AMPLITUDE_FLUSH_INTERVAL_MS must be an integer from 1 to 3600000, got '0'"),
    ("AMPLITUDE_FLUSH_INTERVAL_MS", "1s",
     "AMPLITUDE_FLUSH_INTERVAL_MS must be an integer from 1 to 3600000, got '1s'"),
    ("AMPLITUDE_FLUSH_MAX_EVENTS", "2001",
     "AMPLITUDE_FLUSH_MAX_EVENTS must be an integer from 1 to 2000, got '2001'"),
    ("AMPLITUDE_SENDERS", "0", "AMPLITUDE_SENDERS must be an integer from 1 to 64, got '0'"),
    ("AMPLITUDE_SENDERS", "-1", "AMPLITUDE_SENDERS must be an integer from 1 to 64, got '-1'"),
    ("AMPLITUDE_SENDERS", "+4", "AMPLITUDE_SENDERS must be an integer from 1 to 64, got '+4'"),
    ("AMPLITUDE_SENDERS", "4.0", "AMPLITUDE_SENDERS must be an integer from 1 to 64, got '4.0'"),
    ("AMPLITUDE_SENDERS", "0x10", "AMPLITUDE_SENDERS must be an integer from 1 to 64, got '0x10'"),
    ("AMPLITUDE_SENDERS", "1 6", "AMPLITUDE_SENDERS must be an integer from 1 to 64, got '1 6'"),
    ("AMPLITUDE_SENDERS", "\u0663",  # ARABIC-INDIC DIGIT THREE: int() takes it, we do not
     "AMPLITUDE_SENDERS must be an integer from 1 to 64, got '\u0663'"),
    ("AMPLITUDE_PARTITION_CAPACITY", "1_000",
     "AMPLITUDE_PARTITION_CAPACITY must be an integer from 1 to 10000000, got '1_000'"),
    ("AMPLITUDE_MAX_BUFFERED_EVENTS", "1e5",
     "AMPLITUDE_MAX_BUFFERED_EVENTS must be an integer from 1 to 100000000, got '1e5'"),
    ("AMPLITUDE_OVERFLOW", "block",
     "AMPLITUDE_OVERFLOW must be 'drop_oldest' or 'drop_newest', got 'block'"),
    ("AMPLITUDE_OVERFLOW", "drop-newest",
     "AMPLITUDE_OVERFLOW must be 'drop_oldest' or 'drop_newest', got 'drop-newest'"),
    ("AMPLITUDE_TIMEOUT_MS", "600001",
     "AMPLITUDE_TIMEOUT_MS must be an integer from 1 to 600000, got '600001'"),
    ("AMPLITUDE_MAX_RETRIES", "1001",
     "AMPLITUDE_MAX_RETRIES must be an integer from 0 to 1000, got '1001'"),
    ("AMPLITUDE_MIN_ID_LENGTH", "0",
     "AMPLITUDE_MIN_ID_LENGTH must be an integer from 1 to 1024, got '0'"),
    ("AMPLITUDE_MIN_ID_LENGTH", "none",
     "AMPLITUDE_MIN_ID_LENGTH must be an integer from 1 to 1024, got 'none'"),
    ("AMPLITUDE_SHUTDOWN_TIMEOUT_MS", "2s",
     "AMPLITUDE_SHUTDOWN_TIMEOUT_MS must be an integer from 0 to 600000, got '2s'"),
    ("AMPLITUDE_EVENT_PREFIX", "x" * 65,
     "AMPLITUDE_EVENT_PREFIX must be text of at most 64 printable characters, got '"
     + "x" * 65 + "'"),
    ("AMPLITUDE_LOG_INCLUDE_LOGGER", "maybe",
     "AMPLITUDE_LOG_INCLUDE_LOGGER must be true or false (also 1/0, yes/no, on/off), got 'maybe'"),
    ("AMPLITUDE_SPAN_EVENTS", "a,,b",
     "AMPLITUDE_SPAN_EVENTS must be a comma-separated list of name patterns such as"
     " 'checkout.*,report_*', got 'a,,b'"),
    ("AMPLITUDE_SEND_IP", "2",
     "AMPLITUDE_SEND_IP must be true or false (also 1/0, yes/no, on/off), got '2'"),
    ("AMPLITUDE_CONSENT_MODE", "opt-in",
     "AMPLITUDE_CONSENT_MODE must be 'opt_out' or 'opt_in', got 'opt-in'"),
    ("AMPLITUDE_CONSENT_DB", "/",
     "AMPLITUDE_CONSENT_DB must be a path to a file, which is created if missing, got '/'"),
    ("AMPLITUDE_CONSENT_REDIS_URL", "http://localhost:6379",
     f"AMPLITUDE_CONSENT_REDIS_URL {REDIS_RULE}, got 'http://localhost:6379'"),
    ("AMPLITUDE_CONSENT_REDIS_URL", "redis://:hunter2@localhost:6379/db",
     f"AMPLITUDE_CONSENT_REDIS_URL {REDIS_RULE}"),
    ("AMPLITUDE_PII", "mask",
     "AMPLITUDE_PII must be 'off', 'redact' or 'hash', got 'mask'"),
    ("AMPLITUDE_PII_KEYS", "email,,phone",
     "AMPLITUDE_PII_KEYS must be a comma-separated list of property names such as"
     " 'email,phone', got 'email,,phone'"),
    ("AMPLITUDE_PII_SALT", "short-salt", "AMPLITUDE_PII_SALT must be at least 16 characters long"),
    ("AMPLITUDE_PII_SALT", "a salt with spaces in it",
     "AMPLITUDE_PII_SALT must not contain whitespace"),
    ("AMPLITUDE_DESTINATIONS_FILE", "/no/such/destinations.toml",
     "AMPLITUDE_DESTINATIONS_FILE must be a path to an existing, readable file, got"
     " '/no/such/destinations.toml'"),
    ("AMPLITUDE_TENANT_ATTRIBUTE", "tenant id",
     "AMPLITUDE_TENANT_ATTRIBUTE must be an attribute name of letters, digits, '.', '_' and '-'"
     " such as 'tenant.id', got 'tenant id'"),
    ("AMPLITUDE_UNKNOWN_TENANT", "fallback",
     "AMPLITUDE_UNKNOWN_TENANT must be 'drop' or 'default', got 'fallback'"),
    ("AMPLITUDE_DESTINATION_MAX_BUFFERED_EVENTS", "0",
     "AMPLITUDE_DESTINATION_MAX_BUFFERED_EVENTS must be an integer from 1 to 100000000, got '0'"),
    ("AMPLITUDE_SPOOL_DIR", __file__,
     f"AMPLITUDE_SPOOL_DIR must be a path to a directory, which is created if missing, got"
     f" {__file__!r}"),
    ("AMPLITUDE_SPOOL_SYNC_MS", "5",
     "AMPLITUDE_SPOOL_SYNC_MS must be an integer from 10 to 60000, got '5'"),
    ("AMPLITUDE_SPOOL_MAX_MB", "0",
     "AMPLITUDE_SPOOL_MAX_MB must be an integer from 1 to 1000000, got '0'"),
]  # fmt: skip


@pytest.mark.parametrize(("variable", "text", "message"), INVALID)
def test_env_validation_error_names_the_variable_value_and_rule(
    variable: str, text: str, message: str
) -> None:
    assert error_of({variable: text}) == message


def test_every_variable_has_an_invalid_case() -> None:
    assert {variable for variable, *_ in INVALID} == set(ALL_VARIABLES)


def test_the_error_shows_the_value_as_given_before_stripping() -> None:
    assert error_of({"AMPLITUDE_SENDERS": " 65 "}) == (
        "AMPLITUDE_SENDERS must be an integer from 1 to 64, got ' 65 '"
    )


def test_a_huge_value_is_refused_and_shortened_in_the_error() -> None:
    message = error_of({"AMPLITUDE_SENDERS": "9" * 10_000})

    assert message.startswith("AMPLITUDE_SENDERS must be an integer from 1 to 64, got '999")
    assert message.endswith("...")
    assert len(message) < 200


def test_all_bad_variables_are_reported_in_one_error() -> None:
    message = error_of(
        {
            "AMPLITUDE_SERVER_ZONE": "eu-west",
            "AMPLITUDE_SENDERS": "0",
            "AMPLITUDE_USE_BATCH": "maybe",
            "AMPLITUDE_FLUSH_INTERVAL_MS": "1000",  # fine, not listed
        }
    )

    assert message == (
        "3 settings are invalid:\n"
        "  - AMPLITUDE_SERVER_ZONE must be 'US' or 'EU', got 'eu-west'\n"
        f"  - AMPLITUDE_USE_BATCH {BOOLEAN_RULE}, got 'maybe'\n"
        "  - AMPLITUDE_SENDERS must be an integer from 1 to 64, got '0'"
    )


# --- Keys are never shown --------------------------------------------------------------------


@pytest.mark.parametrize("variable", KEYS)
@pytest.mark.parametrize("bad_key", ["SeCrEt-KeY with-space", "SeCrEt-KeY\u00e9", "SeCrEt\x7fKeY"])
def test_a_bad_key_is_reported_without_its_value(variable: str, bad_key: str) -> None:
    message = error_of({variable: bad_key, "AMPLITUDE_SENDERS": "0"})

    assert variable in message
    assert "SeCrEt" not in message


@pytest.mark.parametrize("bad_key", [b"SeCrEt-KeY", 12345678901234])
def test_a_key_of_the_wrong_type_in_code_is_reported_without_its_value(bad_key: object) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(api_key=bad_key)  # type: ignore[arg-type]

    message = str(caught.value)
    assert message.startswith("api_key (AMPLITUDE_API_KEY) must be a string or None, not ")
    assert "SeCrEt" not in message
    assert "12345678901234" not in message


def test_a_good_key_is_not_shown_in_errors_about_other_settings() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"AMPLITUDE_API_KEY": API_KEY}, secret_key=SECRET_KEY, senders=0)

    assert API_KEY not in str(caught.value)
    assert SECRET_KEY not in str(caught.value)


def test_a_url_with_credentials_is_refused_without_repeating_them() -> None:
    message = error_of({"AMPLITUDE_SERVER_URL": "https://admin:hunter2@proxy.example.com/x"})

    assert "hunter2" not in message
    assert "admin" not in message


def test_repr_and_str_show_the_settings_but_mask_the_keys() -> None:
    settings = Settings(api_key=API_KEY, secret_key=SECRET_KEY, senders=8)

    for text in (repr(settings), str(settings), f"{settings}", f"{settings!r}"):
        assert API_KEY not in text
        assert SECRET_KEY not in text
        assert "api_key='***'" in text
        assert "secret_key='***'" in text
        assert "senders=8" in text
        assert "server_zone='US'" in text


def test_repr_shows_an_unset_key_as_none() -> None:
    assert repr(Settings()).startswith("Settings(api_key=None, secret_key=None, server_zone='US'")


def test_describe_masks_the_keys_and_shows_every_variable() -> None:
    settings = Settings(api_key=API_KEY, server_zone="EU", min_id_length=3, use_batch=True)

    described = dict(settings.describe())

    assert list(described) == ALL_VARIABLES
    assert described["AMPLITUDE_API_KEY"] == "set (32 chars)"
    assert described["AMPLITUDE_SECRET_KEY"] == "not set"
    assert described["AMPLITUDE_SERVER_ZONE"] == "EU"
    assert described["AMPLITUDE_SERVER_URL"] == "not set"
    assert described["AMPLITUDE_USE_BATCH"] == "true"
    assert described["AMPLITUDE_ENABLED"] == "true"
    assert described["AMPLITUDE_MIN_ID_LENGTH"] == "3"
    assert described["AMPLITUDE_MAX_BUFFERED_EVENTS"] == "100000"
    assert API_KEY not in repr(settings.describe())


# --- Keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", KEYS)
def test_a_key_is_stripped_and_its_variable_may_be_blank(variable: str) -> None:
    field = KEYS[variable]
    padded: dict[str, Any] = {field: f" {API_KEY} "}
    blank: dict[str, Any] = {field: "  "}

    assert getattr(Settings.from_env({variable: f"\t{API_KEY}  \n"}), field) == API_KEY
    assert getattr(Settings.from_env({variable: "   "}), field) is None
    assert getattr(Settings(**padded), field) == API_KEY
    assert getattr(Settings(**blank), field) is None


# --- Derived URLs ----------------------------------------------------------------------------


def test_us_urls() -> None:
    settings = Settings()

    assert settings.httpapi_url == "https://api2.amplitude.com/2/httpapi"
    assert settings.batch_url == "https://api2.amplitude.com/batch"
    assert settings.identify_url == "https://api2.amplitude.com/identify"
    assert settings.deletions_url == "https://amplitude.com/api/2/deletions/users"


def test_eu_urls() -> None:
    settings = Settings.from_env({"AMPLITUDE_SERVER_ZONE": "eu"})

    assert settings.httpapi_url == "https://api.eu.amplitude.com/2/httpapi"
    assert settings.batch_url == "https://api.eu.amplitude.com/batch"
    assert settings.identify_url == "https://api.eu.amplitude.com/identify"
    assert settings.deletions_url == "https://analytics.eu.amplitude.com/api/2/deletions/users"


@pytest.mark.parametrize("zone", ["US", "EU"])
@pytest.mark.parametrize(
    ("server_url", "base"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://proxy.example.com/amplitude", "https://proxy.example.com/amplitude"),
        ("https://proxy.example.com/amplitude/", "https://proxy.example.com/amplitude"),
        ("https://proxy.example.com/a/b//", "https://proxy.example.com/a/b"),
    ],
)
def test_server_url_replaces_every_host_and_keeps_its_path_prefix(
    zone: str, server_url: str, base: str
) -> None:
    environ = {"AMPLITUDE_SERVER_URL": server_url, "AMPLITUDE_SERVER_ZONE": zone}

    settings = Settings.from_env(environ)

    assert settings.server_url == base
    assert settings.httpapi_url == f"{base}/2/httpapi"
    assert settings.batch_url == f"{base}/batch"
    assert settings.identify_url == f"{base}/identify"
    assert settings.deletions_url == f"{base}/api/2/deletions/users"


def test_ingestion_url_is_the_batch_api_only_with_use_batch() -> None:
    assert Settings().ingestion_url == "https://api2.amplitude.com/2/httpapi"
    assert Settings(use_batch=True).ingestion_url == "https://api2.amplitude.com/batch"
    assert (
        Settings(use_batch=True, server_zone="EU").ingestion_url
        == "https://api.eu.amplitude.com/batch"
    )


# --- Settings built in code ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"senders": 0}, "senders (AMPLITUDE_SENDERS) must be an integer from 1 to 64, got 0"),
        ({"senders": "4"}, "senders (AMPLITUDE_SENDERS) must be an integer from 1 to 64, got '4'"),
        ({"senders": 4.0}, "senders (AMPLITUDE_SENDERS) must be an integer from 1 to 64, got 4.0"),
        ({"senders": True},
         "senders (AMPLITUDE_SENDERS) must be an integer from 1 to 64, got True"),
        ({"min_id_length": 0},
         "min_id_length (AMPLITUDE_MIN_ID_LENGTH) must be an integer from 1 to 1024, got 0"),
        ({"use_batch": "yes"}, f"use_batch (AMPLITUDE_USE_BATCH) {BOOLEAN_RULE}, got 'yes'"),
        ({"enabled": 1}, f"enabled (AMPLITUDE_ENABLED) {BOOLEAN_RULE}, got 1"),
        ({"server_zone": "eu-west"},
         "server_zone (AMPLITUDE_SERVER_ZONE) must be 'US' or 'EU', got 'eu-west'"),
        ({"server_zone": None},
         "server_zone (AMPLITUDE_SERVER_ZONE) must be 'US' or 'EU', got None"),
        ({"overflow": "block"},
         "overflow (AMPLITUDE_OVERFLOW) must be 'drop_oldest' or 'drop_newest', got 'block'"),
        ({"server_url": ""}, f"server_url (AMPLITUDE_SERVER_URL) {URL_RULE}, got ''"),
        ({"server_url": "localhost:8080"},
         f"server_url (AMPLITUDE_SERVER_URL) {URL_RULE}, got 'localhost:8080'"),
        ({"api_key": "a b"}, "api_key (AMPLITUDE_API_KEY) must not contain whitespace"),
    ],
)  # fmt: skip
def test_settings_built_in_code_are_validated_naming_field_and_variable(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(**changes)

    assert str(caught.value) == message


def test_settings_built_in_code_report_every_bad_field_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings(senders=0, timeout_ms=0, api_key="not a key")

    assert str(caught.value) == (
        "3 settings are invalid:\n"
        "  - api_key (AMPLITUDE_API_KEY) must not contain whitespace\n"
        "  - senders (AMPLITUDE_SENDERS) must be an integer from 1 to 64, got 0\n"
        "  - timeout_ms (AMPLITUDE_TIMEOUT_MS) must be an integer from 1 to 600000, got 0"
    )


def test_settings_built_in_code_are_normalised_like_the_environment() -> None:
    settings = Settings(server_zone="eu", overflow="Drop_Oldest", server_url="http://h:1/p/")  # type: ignore[arg-type]

    assert settings.server_zone == "EU"
    assert settings.overflow == "drop_oldest"
    assert settings.server_url == "http://h:1/p"


def test_settings_are_immutable() -> None:
    settings = Settings()

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.senders = 8  # type: ignore[misc]


def test_settings_take_keyword_arguments_only() -> None:
    with pytest.raises(TypeError):
        Settings(API_KEY)  # type: ignore[call-arg]


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="AMPLITUDE_SENDERS"):
        Settings(senders=0)


# --- from_env overrides ----------------------------------------------------------------------


def test_overrides_win_over_the_environment() -> None:
    settings = Settings.from_env(
        {"AMPLITUDE_SENDERS": "2", "AMPLITUDE_API_KEY": API_KEY}, senders=9, api_key=None
    )

    assert settings.senders == 9
    assert settings.api_key is None


def test_a_bad_override_hides_no_valid_variable_and_masks_no_invalid_one() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"AMPLITUDE_SENDERS": "0", "AMPLITUDE_TIMEOUT_MS": "0"}, timeout_ms=-5)

    assert str(caught.value) == (
        "2 settings are invalid:\n"
        "  - AMPLITUDE_SENDERS must be an integer from 1 to 64, got '0'\n"
        "  - timeout_ms (AMPLITUDE_TIMEOUT_MS) must be an integer from 1 to 600000, got -5"
    )


def test_an_unknown_override_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="sender"):
        Settings.from_env({}, sender=4)


# --- Unknown AMPLITUDE_* variables -----------------------------------------------------------


def test_a_misspelt_variable_warns_with_the_closest_known_name() -> None:
    with pytest.warns(ConfigWarning) as record:
        settings = Settings.from_env({"AMPLITUDE_FLUSH_INTERVAL": "500"})

    assert settings.flush_interval_ms == 1000
    assert len(record) == 1
    assert str(record[0].message) == (
        "otel-amplitude ignores unknown environment variables:"
        " AMPLITUDE_FLUSH_INTERVAL (did you mean AMPLITUDE_FLUSH_INTERVAL_MS?)"
    )
    assert record[0].filename == __file__  # points at the caller of from_env


def test_several_unknown_variables_give_one_warning_naming_all() -> None:
    environ = {
        "AMPLITUDE_APIKEY": API_KEY,
        "AMPLITUDE_SERVERZONE": "EU",
        "AMPLITUDE_WIDGET_COLOUR": "blue",
        "AMPLITUDE_SENDERS": "4",
        "OTHER_VARIABLE": "x",
    }
    with pytest.warns(ConfigWarning) as record:
        Settings.from_env(environ)

    assert len(record) == 1
    message = str(record[0].message)
    assert "AMPLITUDE_APIKEY (did you mean AMPLITUDE_API_KEY?)" in message
    assert "AMPLITUDE_SERVERZONE (did you mean AMPLITUDE_SERVER_ZONE?)" in message
    assert message.endswith(", AMPLITUDE_WIDGET_COLOUR")  # nothing close: no suggestion
    assert "OTHER_VARIABLE" not in message
    assert API_KEY not in message


def test_known_variables_alone_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Settings.from_env(dict.fromkeys(ALL_VARIABLES, "") | {"HOME": "/root"})


def test_an_unknown_variable_warns_even_when_the_settings_are_invalid() -> None:
    with pytest.warns(ConfigWarning, match="AMPLITUDE_TIMEOUT"), pytest.raises(ConfigError):
        Settings.from_env({"AMPLITUDE_TIMEOUT": "5", "AMPLITUDE_SENDERS": "0"})


# --- replace() -------------------------------------------------------------------------------


def test_replace_returns_a_validated_copy() -> None:
    original = Settings(api_key=API_KEY)

    changed = original.replace(senders=8, server_zone="EU")

    assert changed.senders == 8
    assert changed.server_zone == "EU"
    assert changed.api_key == API_KEY
    assert original.senders == 4
    with pytest.raises(ConfigError, match=r"senders \(AMPLITUDE_SENDERS\)"):
        original.replace(senders=65)
    with pytest.raises(TypeError):
        original.replace(sender=8)


# --- The reference documentation -------------------------------------------------------------


def test_docs_configuration_md_is_the_generated_reference() -> None:
    assert DOCS_FILE.read_text(encoding="utf-8") == configuration_reference(), (
        "docs/configuration.md is stale; regenerate it with"
        " `.venv/bin/python -m otel_amplitude._settings > docs/configuration.md`"
    )


def test_running_the_module_prints_the_reference() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "otel_amplitude._settings"],
        capture_output=True,
        check=True,
        text=True,
        encoding="utf-8",
    )

    assert completed.stdout == configuration_reference()


def test_the_reference_documents_every_variable_with_its_default_and_reason() -> None:
    reference = configuration_reference()

    for variable in ALL_VARIABLES:
        assert f"| [`{variable}`](#{variable.lower()}) |" in reference
        section = reference.split(f"## `{variable}`\n", 1)[1].split("\n## ", 1)[0]
        assert "Default: " in section
        assert "Why this default: " in section
        assert len(section) > 200


# --- Privacy settings ------------------------------------------------------------------------


def test_hash_mode_needs_a_salt() -> None:
    assert error_of({"AMPLITUDE_PII": "hash"}) == (
        "AMPLITUDE_PII=hash needs AMPLITUDE_PII_SALT, the secret key of the hash (at least 16"
        " characters): set it, or use AMPLITUDE_PII=redact"
    )
    with pytest.raises(ConfigError, match="AMPLITUDE_PII_SALT"):
        Settings(pii="hash")
    assert Settings(pii="hash", pii_salt=SECRET_KEY).pii == "hash"


def test_consent_lives_in_one_store_only() -> None:
    message = error_of(
        {"AMPLITUDE_CONSENT_DB": "/tmp/c.db", "AMPLITUDE_CONSENT_REDIS_URL": "redis://h:6379"}
    )

    assert message.startswith("AMPLITUDE_CONSENT_DB and AMPLITUDE_CONSENT_REDIS_URL are both set")


def test_a_redis_password_is_never_shown() -> None:
    settings = Settings(consent_redis_url="redis://app:hunter2@cache:6379/2")

    assert "hunter2" not in repr(settings)
    assert "consent_redis_url='***'" in repr(settings)
    assert (
        dict(settings.describe())["AMPLITUDE_CONSENT_REDIS_URL"] == "redis://app:***@cache:6379/2"
    )
    with pytest.raises(ConfigError) as caught:
        Settings(consent_redis_url="redis://app:hunter2@cache:port")
    assert "hunter2" not in str(caught.value)


def test_the_salt_is_never_shown() -> None:
    settings = Settings(pii="hash", pii_salt=SECRET_KEY)

    assert SECRET_KEY not in repr(settings)
    assert dict(settings.describe())["AMPLITUDE_PII_SALT"] == "set (32 chars)"


def test_pii_keys_built_in_code_are_lower_cased() -> None:
    assert Settings(pii_keys=("Email", "IBAN")).pii_keys == ("email", "iban")
    assert Settings(pii_keys=()).pii_keys == ()
