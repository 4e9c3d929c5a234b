"""The destinations file, the Destination type and the router: what is accepted, what is refused
with which message, and when a change on disk is noticed. No network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from otel_amplitude import Client, ConfigError, Destination, Settings
from otel_amplitude._destinations import Router, read_destinations
from otel_amplitude.testing import ManualClock

KEY = "acme-key-0000000001"


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_a_table_per_tenant_with_every_key(tmp_path: Path):
    path = write(
        tmp_path / "d.toml",
        f"""
        [tenants.acme]
        api_key = "{KEY}"
        secret_key = "acme-secret-01"
        zone = "eu"
        server_url = "https://proxy.example.com/amp/"
        environment = "staging"
        max_events_per_second = 1000
        max_requests_per_second = 100.5
        max_buffered_events = 5000

        [tenants."tenant with dots.and spaces"]
        api_key = "other-key-0001"
        """,
    )

    table = read_destinations(path).destinations

    assert table["acme"] == Destination(
        "acme",
        KEY,
        "acme-secret-01",
        zone="EU",
        server_url="https://proxy.example.com/amp",
        environment="staging",
        max_events_per_second=1000,
        max_requests_per_second=100.5,
        max_buffered_events=5000,
    )
    assert table["tenant with dots.and spaces"].zone == "US"


def test_keys_may_come_from_the_environment_or_a_file(tmp_path: Path):
    secret = tmp_path / "secret"
    secret.write_text("  from-a-file-0001\n")
    path = write(
        tmp_path / "d.toml",
        f'[tenants.acme]\napi_key = "env:ACME_KEY"\nsecret_key = "file:{secret}"\n',
    )

    [acme] = read_destinations(path, {"ACME_KEY": KEY}).destinations.values()

    assert (acme.api_key, acme.secret_key) == (KEY, "from-a-file-0001")


def test_every_problem_is_listed_at_once_naming_tenant_and_key_never_a_value(tmp_path: Path):
    path = write(
        tmp_path / "d.toml",
        """
        region = "EU"
        [tenants.acme]
        api_key = "env:MISSING_KEY"
        zone = "MARS"
        [tenants.globex]
        apikey = "globex-secret-value"
        [tenants.initech]
        api_key = "file:/no/such/secret"
        max_events_per_second = -1
        [tenants.default]
        api_key = "x"
        """,
    )

    with pytest.raises(ConfigError) as caught:
        read_destinations(path, {})

    message = str(caught.value)
    assert message.startswith(f"AMPLITUDE_DESTINATIONS_FILE={path} has 6 problems:")
    assert "unknown top-level key(s) region" in message
    assert "[tenants.acme] api_key: environment variable MISSING_KEY is not set" in message
    assert "[tenants.globex]: unknown key 'apikey' (did you mean api_key?)" in message
    assert "[tenants.globex]: api_key is required" in message
    assert "[tenants.initech] api_key: cannot read /no/such/secret" in message
    assert "'default' names the destination of AMPLITUDE_API_KEY" in message
    assert "globex-secret-value" not in message
    # acme's zone and initech's rate are checked once their keys resolve: fix, run again.


def test_values_are_validated_once_the_keys_resolve(tmp_path: Path):
    path = write(
        tmp_path / "d.toml",
        f'[tenants.acme]\napi_key = "{KEY}"\nzone = "MARS"\nmax_events_per_second = -1\n'
        'server_url = "ftp://x"\n',
    )

    with pytest.raises(ConfigError) as caught:
        read_destinations(path)

    message = str(caught.value)
    assert "zone must be one of US, EU, got 'MARS'" in message
    assert "max_events_per_second must be a positive number, got -1" in message
    assert "server_url must be an http or https URL" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[tenants.acme\n", "not valid TOML"),
        ("tenants = 3\n", "'tenants' must be a table"),
        ("[tenants]\nacme = 1\n", "[tenants.acme] must be a table with at least api_key"),
    ],
)
def test_a_malformed_file_is_refused_with_its_reason(tmp_path: Path, text: str, expected: str):
    path = write(tmp_path / "d.toml", text)

    with pytest.raises(ConfigError, match="AMPLITUDE_DESTINATIONS_FILE=") as caught:
        read_destinations(path)

    assert expected in str(caught.value)


def test_a_destination_never_shows_its_keys():
    destination = Destination("acme", KEY, "acme-secret-01", zone="EU")

    assert KEY not in repr(destination)
    assert "acme-secret-01" not in repr(destination)
    assert "zone='EU'" in repr(destination)


def test_a_destination_built_in_code_is_validated():
    with pytest.raises(ConfigError, match="destination 'acme': api_key must be a non-empty key"):
        Destination("acme", "a key with spaces")
    with pytest.raises(ConfigError, match="name: a tenant is 1 to 128 printable characters"):
        Destination(" acme", KEY)


def test_the_file_is_read_when_the_client_is_made_and_a_bad_one_fails_there(tmp_path: Path):
    path = write(tmp_path / "d.toml", "[tenants.acme]\n")

    with pytest.raises(ConfigError, match=r"\[tenants.acme\]: api_key is required"):
        Client(Settings(destinations_file=path))


def test_a_client_with_destinations_needs_no_default_key(tmp_path: Path):
    path = write(tmp_path / "d.toml", f'[tenants.acme]\napi_key = "{KEY}"\n')

    client = Client(Settings(destinations_file=path))

    assert client.routes_tenants
    client.shutdown(timeout=0)
    with pytest.raises(ConfigError, match="AMPLITUDE_API_KEY is required"):
        Client(Settings())


def test_a_file_and_a_resolver_together_are_refused(tmp_path: Path):
    path = write(tmp_path / "d.toml", f'[tenants.acme]\napi_key = "{KEY}"\n')

    with pytest.raises(ConfigError, match="not both"):
        Client(Settings(destinations_file=path), destinations={})


# -- the router ---------------------------------------------------------------------------------


def touch(path: Path, text: str) -> None:
    before = os.stat(path).st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_the_router_reads_a_change_once_it_stood_still_for_a_second(tmp_path: Path):
    clock = ManualClock()
    path = tmp_path / "d.toml"
    path.write_text(f'[tenants.acme]\napi_key = "{KEY}"\n')
    router = Router(path=str(path), monotonic=clock.monotonic)

    assert router.poll() is None  # nothing changed
    touch(path, f'[tenants.acme]\napi_key = "{KEY}"\n[tenants.globex]\napi_key = "{KEY}"\n')
    assert router.poll() is None  # looked less than a second ago
    clock.advance(1.0)
    assert router.poll() is None  # changed: perhaps still being written
    clock.advance(1.0)

    table = router.poll()

    assert table is not None
    assert sorted(table) == ["acme", "globex"]
    assert router.lookup("globex") is not None


def test_a_rotated_secret_file_counts_as_a_change(tmp_path: Path):
    clock = ManualClock()
    secret = tmp_path / "acme.key"
    secret.write_text(KEY)
    path = tmp_path / "d.toml"
    path.write_text(f'[tenants.acme]\napi_key = "file:{secret}"\n')
    router = Router(path=str(path), monotonic=clock.monotonic)

    touch(secret, "acme-key-rotated-0002")
    clock.advance(1.0)
    assert router.poll() is None
    clock.advance(1.0)
    table = router.poll()

    assert table is not None
    assert table["acme"].api_key == "acme-key-rotated-0002"


def test_a_bad_change_keeps_the_previous_table_and_counts_once(tmp_path: Path):
    clock = ManualClock()
    path = tmp_path / "d.toml"
    path.write_text(f'[tenants.acme]\napi_key = "{KEY}"\n')
    router = Router(path=str(path), monotonic=clock.monotonic)

    touch(path, "[tenants.acme\n")
    clock.advance(1.0)
    assert router.poll() is None
    clock.advance(1.0)
    assert router.poll() is None
    with pytest.raises(ConfigError, match="not valid TOML"):
        router.reload()
    clock.advance(1.0)
    assert router.poll() is None

    assert router.reload_errors == 1
    assert router.lookup("acme") == Destination("acme", KEY)


def test_a_file_being_rewritten_in_place_is_never_read_half_written(tmp_path: Path):
    clock = ManualClock()
    path = tmp_path / "d.toml"
    path.write_text(f'[tenants.acme]\napi_key = "{KEY}"\n')
    router = Router(path=str(path), monotonic=clock.monotonic)

    touch(path, "")  # truncated, the new content not written yet
    clock.advance(1.0)
    assert router.poll() is None
    touch(path, f'[tenants.acme]\napi_key = "{KEY}"\n[tenants.globex]\napi_key = "{KEY}"\n')
    clock.advance(1.0)
    assert router.poll() is None  # still moving
    clock.advance(1.0)

    table = router.poll()

    assert table is not None
    assert sorted(table) == ["acme", "globex"]
    assert router.reload_errors == 0


def test_an_empty_file_is_refused_rather_than_removing_every_tenant(tmp_path: Path):
    path = write(tmp_path / "d.toml", "# nothing yet\n")

    with pytest.raises(ConfigError, match="the file must name at least one tenant"):
        read_destinations(path)


def test_a_failing_resolver_drops_the_tenant_and_is_asked_again_later():
    clock = ManualClock()
    calls: list[str] = []

    def resolve(tenant: str) -> Destination | None:
        calls.append(tenant)
        raise RuntimeError("directory down")

    router = Router(resolver=resolve, monotonic=clock.monotonic)

    assert router.lookup("acme") is None
    assert router.lookup("acme") is None
    clock.advance(5.0)
    assert router.lookup("acme") is None

    assert calls == ["acme", "acme"]


def test_a_resolver_must_return_a_destination():
    router = Router(resolver=lambda tenant: "acme-key", monotonic=ManualClock().monotonic)  # type: ignore[arg-type, return-value]

    assert router.lookup("acme") is None


def test_a_mapping_of_destinations_must_name_them_by_their_tenant():
    with pytest.raises(ConfigError, match=r"destinations\['acme'\] must be a Destination named"):
        Router(resolver={"acme": Destination("globex", KEY)}, monotonic=ManualClock().monotonic)
