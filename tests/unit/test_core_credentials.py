"""Git credentials from a Secret's data (core/credentials.py), as tables: what each key becomes, the exact
message of each refusal (naming the key, never the value), what must be scrubbed, which known_hosts lines
libssh2 can use, and a fingerprint that is stable across versions (mirror caches are keyed by it)."""

from __future__ import annotations

import base64

import pytest

from bluegreen.core.credentials import SSH_HOST_KEY_TYPES, Credentials, known_host_entries
from bluegreen.core.errors import SourceError

KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUA\n-----END OPENSSH PRIVATE KEY-----\n"
PEM_KEY = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
HOST_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIHh0ZXN0a2V5"
KNOWN_HOSTS = f"[git.example.com]:2222 ssh-ed25519 {HOST_KEY}\n".encode()
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
VALUE = "hunter2-very-secret"


@pytest.mark.parametrize(("data", "expected"), [
    pytest.param({}, Credentials(), id="nothing"),
    pytest.param({"username": b"bot", "password": VALUE.encode()}, Credentials(username="bot", password=VALUE),
                 id="basic-auth"),
    pytest.param({"username": b"bot\r\n", "password": f"{VALUE}\n".encode()},
                 Credentials(username="bot", password=VALUE), id="trailing-newlines-dropped"),
    pytest.param({"bearerToken": b"tok-123"}, Credentials(bearer_token="tok-123"), id="bearer"),
    pytest.param({"identity": KEY, "passphrase": b"pp", "known_hosts": KNOWN_HOSTS},
                 Credentials(ssh_identity=KEY, ssh_passphrase="pp", known_hosts=KNOWN_HOSTS), id="ssh"),
    pytest.param({"identity": PEM_KEY}, Credentials(ssh_identity=PEM_KEY), id="pem-key"),
    pytest.param({"identity": bytearray(KEY)}, Credentials(ssh_identity=KEY), id="bytearray"),
    pytest.param({"caFile": CA}, Credentials(ca_bundle=CA), id="ca"),
    pytest.param({"username": b"", "password": b"\n", "caFile": b"  ", "identity": b"\n"}, Credentials(),
                 id="empty-values-are-absent"),
    pytest.param({"username": b"bot", "identity.pub": b"ssh-ed25519 AAAA", "extra": b"x"},
                 Credentials(username="bot"), id="other-keys-ignored"),
    pytest.param({"username": b"b\xc3\xb6t"}, Credentials(username="böt"), id="utf-8"),
    pytest.param({"bearerToken": b"!~"}, Credentials(bearer_token="!~"), id="printable-ascii-edges"),
    pytest.param({"username": b"XAVIER x \n"}, Credentials(username="XAVIER x "), id="only-newlines-are-dropped"),
])
def test_secret_data_is_read(data: dict[str, bytes], expected: Credentials) -> None:
    assert Credentials.from_secret_data(data) == expected


TYPES = ", ".join(sorted(SSH_HOST_KEY_TYPES))


@pytest.mark.parametrize(("data", "message"), [
    pytest.param({"password": VALUE.encode()},
                 "The Secret's key 'password' is set but username is not: add username too (for a token, the user "
                 "name your git host expects with it).", id="password-without-username"),
    pytest.param({"username": b"u", "bearerToken": VALUE.encode()},
                 "The Secret's key 'bearerToken' cannot be combined with username/password: keep one of them.",
                 id="bearer-and-username"),
    pytest.param({"username": b"u", "password": b"p", "bearerToken": VALUE.encode()},
                 "The Secret's key 'bearerToken' cannot be combined with username/password: keep one of them.",
                 id="bearer-and-basic"),
    pytest.param({"bearerToken": f"a {VALUE}".encode()},
                 "The Secret's key 'bearerToken' must be printable ASCII without spaces.", id="bearer-with-space"),
    pytest.param({"bearerToken": "tök".encode()},
                 "The Secret's key 'bearerToken' must be printable ASCII without spaces.", id="bearer-not-ascii"),
    pytest.param({"bearerToken": b"a\x7f"},
                 "The Secret's key 'bearerToken' must be printable ASCII without spaces.", id="bearer-with-del"),
    pytest.param({"username": b"u", "password": f"{VALUE}\nsecond".encode()},
                 "The Secret's key 'password' must be a single line.", id="two-lines"),
    pytest.param({"username": b"u", "password": f"{VALUE}\rx".encode()},
                 "The Secret's key 'password' must be a single line.", id="carriage-return-inside"),
    pytest.param({"username": b"u\x00x"}, "The Secret's key 'username' must be a single line.", id="nul"),
    pytest.param({"username": b"\xff" + VALUE.encode()}, "The Secret's key 'username' is not UTF-8 text.",
                 id="not-utf-8"),
    pytest.param({"password": VALUE}, "The Secret's key 'password' must be given as bytes (the Secret's data, "
                 "base64-decoded).", id="str-not-bytes"),
    pytest.param({"identity": VALUE}, "The Secret's key 'identity' must be given as bytes (the Secret's data, "
                 "base64-decoded).", id="identity-str"),
    pytest.param({"passphrase": VALUE.encode()},
                 "The Secret's key 'passphrase' is set but identity (the private key) is not.",
                 id="passphrase-without-identity"),
    pytest.param({"identity": VALUE.encode()},
                 "The Secret's key 'identity' is not a private key in OpenSSH or PEM format ('-----BEGIN ... "
                 "PRIVATE KEY-----').", id="identity-not-a-key"),
    pytest.param({"identity": b"-----BEGIN OPENSSH KEY-----"},
                 "The Secret's key 'identity' is not a private key in OpenSSH or PEM format ('-----BEGIN ... "
                 "PRIVATE KEY-----').", id="identity-without-private-key-marker"),
    pytest.param({"identity": b"PRIVATE KEY-----"},
                 "The Secret's key 'identity' is not a private key in OpenSSH or PEM format ('-----BEGIN ... "
                 "PRIVATE KEY-----').", id="identity-without-begin"),
    pytest.param({"identity": "-----BEGIN ö PRIVATE KEY-----".encode()},
                 "The Secret's key 'identity' is not a private key in OpenSSH or PEM format ('-----BEGIN ... "
                 "PRIVATE KEY-----').", id="identity-not-ascii"),
    pytest.param({"known_hosts": b"# only a comment\n"},
                 f"The Secret's key 'known_hosts' has no usable line: expected 'host key-type base64-key' lines as "
                 f"printed by ssh-keyscan, key types {TYPES}.", id="known-hosts-unusable"),
    pytest.param({"caFile": VALUE.encode()},
                 "The Secret's key 'caFile' holds no PEM certificate ('-----BEGIN CERTIFICATE-----').",
                 id="ca-not-pem"),
])
def test_invalid_secret_names_the_key_never_the_value(data: dict[str, object], message: str) -> None:
    with pytest.raises(SourceError) as caught:
        Credentials.from_secret_data(data)  # type: ignore[arg-type]
    assert (caught.value.reason, caught.value.message) == ("InvalidSecret", message)
    assert VALUE not in str(caught.value)


@pytest.mark.parametrize(("text", "entries"), [
    pytest.param(f"github.com ssh-ed25519 {HOST_KEY}", [("github.com", "ssh-ed25519", HOST_KEY)], id="one"),
    pytest.param(f"a,b ssh-rsa {HOST_KEY} comment words\n\n", [("a,b", "ssh-rsa", HOST_KEY)], id="comment-kept-out"),
    pytest.param(f"# a ssh-rsa {HOST_KEY}\n@cert-authority * ssh-rsa {HOST_KEY}\nh ssh-rsa", [],
                 id="comments-markers-short"),
    pytest.param(f"h ssh-foo {HOST_KEY}", [], id="unknown-type"),
    pytest.param("h ssh-rsa not*base64", [], id="bad-base64"),
    pytest.param(f"#h ssh-rsa {HOST_KEY}\n@h ssh-rsa {HOST_KEY}", [], id="commented-or-marked-valid-lines"),
    pytest.param(f"h ssh-rsa bad*\nk ssh-rsa {HOST_KEY}", [("k", "ssh-rsa", HOST_KEY)], id="a-bad-line-then-a-good"),
    pytest.param(f"h ssh-foo {HOST_KEY}\nk ssh-rsa {HOST_KEY}", [("k", "ssh-rsa", HOST_KEY)], id="unknown-then-good"),
    pytest.param("h ssh-rsa QUFB*QUFB", [], id="base64-with-a-stray-character"),
    pytest.param(b"h ssh-rsa \xff\n".decode("latin-1"), [], id="not-utf-8"),
    pytest.param(f"h ecdsa-sha2-nistp256 {HOST_KEY}\nk ssh-dss {HOST_KEY}",
                 [("h", "ecdsa-sha2-nistp256", HOST_KEY), ("k", "ssh-dss", HOST_KEY)], id="two"),
])
def test_known_host_entries(text: str, entries: list[tuple[str, str, str]]) -> None:
    assert known_host_entries(text.encode("latin-1" if "\xff" in text else "utf-8")) == entries


def test_host_key_types_are_the_ones_libssh2_reads() -> None:
    assert {"ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
            "ecdsa-sha2-nistp521"} == SSH_HOST_KEY_TYPES


def test_secret_strings_cover_every_form_a_value_can_leak_in() -> None:
    line = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUA"
    creds = Credentials(username="bot", password="p@ss word", ssh_identity=KEY, ssh_passphrase="phrase-1")
    basic = base64.b64encode(b"bot:p@ss word").decode()
    expected = {"p@ss word", "p%40ss%20word", "phrase-1", basic, line,
                "-----BEGIN OPENSSH PRIVATE KEY-----", "-----END OPENSSH PRIVATE KEY-----",
                "-----BEGIN%20OPENSSH%20PRIVATE%20KEY-----", "-----END%20OPENSSH%20PRIVATE%20KEY-----",
                base64.b64encode(b"bot:p@ss word").decode().replace("=", "%3D")}
    strings = creds.secret_strings()
    assert set(strings) == expected
    assert [len(s) for s in strings] == sorted((len(s) for s in strings), reverse=True), "longest first"
    assert Credentials(bearer_token="tok").secret_strings() == ("tok",)
    assert Credentials(username="bot").secret_strings() == (), "a user name alone is not a secret"
    assert Credentials(password="pw").secret_strings() == ("pw",), "no basic-auth form without a user name"
    assert Credentials(ssh_identity=b"short\n").secret_strings() == (), "lines under 16 characters are not kept"
    assert Credentials(ssh_identity=b"x" * 16).secret_strings() == ("x" * 16,)
    assert Credentials(password="a/b").secret_strings() == ("a%2Fb", "a/b"), "a slash is encoded too"
    assert Credentials(ssh_identity=b"\xff" * 16).secret_strings() == ("%EF%BF%BD" * 16, "\ufffd" * 16)


def test_fingerprint_is_stable_across_versions_and_distinct() -> None:
    # Pinned: mirror caches are keyed by it, so a change of salt, iterations or encoding must be deliberate.
    assert Credentials().fingerprint() == "4745119ab8d72ebeec3b9dad29612d2639d4e1f58ad496cd53c304b1ff6ed302"
    creds = Credentials(username="ab", password="c")
    assert creds.fingerprint() == "10cfa4d27c3a08e26d9d78f89d939c6a25e810bd45f904c5baeb7d184cc2c898"
    assert creds.fingerprint() == Credentials(username="ab", password="c").fingerprint()
    others = [Credentials(username="a", password="bc"), Credentials(username="ab", password="c", ca_bundle=CA),
              Credentials(password="c"), Credentials(username="ab", password=""), Credentials()]
    assert len({creds.fingerprint(), *(o.fingerprint() for o in others)}) == 6


@pytest.mark.parametrize(("creds", "text"), [
    pytest.param(Credentials(), "Credentials(none set)", id="none"),
    pytest.param(Credentials(username="bot", password=VALUE), "Credentials(username, password set)", id="basic"),
    pytest.param(Credentials(ssh_identity=KEY, known_hosts=KNOWN_HOSTS, ca_bundle=CA),
                 "Credentials(ssh_identity, known_hosts, ca_bundle set)", id="ssh"),
])
def test_repr_names_fields_not_values(creds: Credentials, text: str) -> None:
    assert repr(creds) == str(creds) == text
