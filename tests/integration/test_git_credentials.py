"""Credentials from a Secret's data: parsing, validation, fingerprint and redaction (no network)."""

from __future__ import annotations

import threading
import time

import pytest

from bluegreen.core.credentials import Credentials
from bluegreen.core.errors import SourceError
from bluegreen.git.settings import SettingGate

pytestmark = pytest.mark.integration

KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUA\n-----END OPENSSH PRIVATE KEY-----\n"
KNOWN_HOSTS = b"[git.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0ZXN0a2V5\n"
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
VALUE = "hunter2-very-secret"


def invalid(data: dict[str, object]) -> SourceError:
    with pytest.raises(SourceError) as caught:
        Credentials.from_secret_data(data)  # type: ignore[arg-type]
    assert caught.value.reason == "InvalidSecret"
    return caught.value


def test_every_key_is_read() -> None:
    creds = Credentials.from_secret_data({
        "username": b"bot\n", "password": f"{VALUE}\r\n".encode(), "identity": KEY, "passphrase": b"pp",
        "known_hosts": KNOWN_HOSTS, "caFile": CA, "identity.pub": b"ignored", "extra": b"ignored",
    })
    assert creds == Credentials(
        username="bot", password=VALUE, ssh_identity=KEY, ssh_passphrase="pp", known_hosts=KNOWN_HOSTS, ca_bundle=CA
    )
    assert Credentials.from_secret_data({"bearerToken": b"tok\n"}) == Credentials(bearer_token="tok")


def test_empty_values_count_as_absent() -> None:
    assert Credentials.from_secret_data({"username": b"", "password": b"\n", "caFile": b"  "}) == Credentials()


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"password": VALUE.encode()}, "password"),
        ({"username": b"u", "bearerToken": VALUE.encode()}, "bearerToken"),
        ({"bearerToken": f"a {VALUE}".encode()}, "bearerToken"),
        ({"bearerToken": f"a\n{VALUE}".encode()}, "bearerToken"),
        ({"username": b"u", "password": f"{VALUE}\nsecond line".encode()}, "password"),
        ({"passphrase": VALUE.encode()}, "passphrase"),
        ({"identity": VALUE.encode()}, "identity"),
        ({"identity": KEY, "known_hosts": VALUE.encode()}, "known_hosts"),
        ({"identity": KEY, "known_hosts": b"@cert-authority * ssh-ed25519 AAAA\n# comment\n"}, "known_hosts"),
        ({"caFile": VALUE.encode()}, "caFile"),
        ({"username": b"\xff\xfe" + VALUE.encode()}, "username"),
        ({"password": VALUE}, "password"),  # a str: the caller forgot to decode the Secret
    ],
)
def test_invalid_secret_names_the_key_and_never_the_value(data: dict[str, object], key: str) -> None:
    err = invalid(data)
    assert repr(key) in err.message
    assert VALUE not in err.message and "hunter2" not in err.message


def test_fingerprint_is_stable_distinct_and_reveals_nothing() -> None:
    a = Credentials(username="ab", password="c")
    assert a.fingerprint() == Credentials(username="ab", password="c").fingerprint()
    assert len(a.fingerprint()) == 64 and int(a.fingerprint(), 16) >= 0
    others = [
        Credentials(username="a", password="bc"),  # field boundaries count
        Credentials(username="ab", password="c", ca_bundle=CA),
        Credentials(password="c"),
        Credentials(),
    ]
    assert len({a.fingerprint(), *(o.fingerprint() for o in others)}) == 5
    secret = Credentials(username="bot", password=VALUE)
    assert VALUE not in secret.fingerprint()


def test_repr_names_the_fields_that_are_set_and_no_value() -> None:
    creds = Credentials(username="bot", password=VALUE, ssh_identity=KEY)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert VALUE not in text and "bot" not in text and "OPENSSH" not in text
        assert "username" in text and "password" in text and "ssh_identity" in text
        assert "bearer_token" not in text
    assert repr(Credentials()) == "Credentials(none set)"


def test_setting_gate_never_mixes_values_lets_equal_ones_share_and_never_waits() -> None:
    gate = SettingGate()
    active: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    mixed: list[tuple[str, ...]] = []
    refused: list[str] = []
    log_lock = threading.Lock()
    current: list[str] = []

    def setup(value: str) -> object:
        current.append(value)
        return lambda: current.remove(value)

    def work(value: str) -> None:
        with gate.hold(value, lambda: setup(value)) as held:  # type: ignore[arg-type, return-value]
            if not held:
                with log_lock:
                    refused.append(value)
                return
            with log_lock:
                active.append(value)
                if len(set(active)) > 1 or current != [value]:
                    mixed.append(tuple(active))
                if len(active) > 1:
                    overlaps.append(tuple(active))
            time.sleep(0.01)
            with log_lock:
                active.remove(value)

    threads = [threading.Thread(target=work, args=("ab"[n % 2],)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert mixed == []
    assert overlaps  # holders of one value did run together
    assert refused, "a value other than the one held is refused"
    assert current == []  # every setup was cleaned up


def test_setting_gate_refuses_another_value_at_once_while_a_holder_hangs() -> None:
    gate = SettingGate()
    cleaned: list[str] = []
    answers: list[tuple[bool, float]] = []

    def other(value: str) -> None:
        started = time.monotonic()
        with gate.hold(value, lambda: lambda: cleaned.append(value)) as held:
            answers.append((held, time.monotonic() - started))

    with gate.hold("a", lambda: lambda: cleaned.append("a")) as held:
        assert held
        for value in ("b", "a"):
            thread = threading.Thread(target=other, args=(value,))
            thread.start()
            thread.join(timeout=2)
            assert not thread.is_alive(), f"{value!r} waited for the holder of 'a'"
        assert cleaned == [], "the setting stays while 'a' is held"
    assert [held for held, _ in answers] == [False, True]
    assert cleaned == ["a"], "cleaned up once, by the last holder to leave"
    with gate.hold("c", lambda: lambda: cleaned.append("c")) as held:
        assert held, "once everyone left, any value can be set"
    assert cleaned == ["a", "c"]
