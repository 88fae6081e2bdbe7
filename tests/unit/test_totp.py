"""TOTP verification: RFC 6238's test vectors, the window, replay, lockout and backup codes."""

from __future__ import annotations

import base64

import pyotp
import pytest

from tenant_security.errors import Locked, Unauthorized
from tenant_security.identity.mfa import MAX_FAILURES, MfaService, backup_code_hash, matching_timecode
from tenant_security.identity.users import User
from tests.support.identity_fakes import FakeUsers, PlainCipher, RecordingPublisher

# RFC 6238, appendix B: the seeds are ASCII "1234567890" repeated to the hash's key length.
SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("time", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc6238_vectors(time: int, sha1: str, sha256: str, sha512: str) -> None:
    for digest, code in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        secret = base64.b32encode(SEEDS[digest]).decode()
        assert matching_timecode(secret, code, time, window=0, digits=8, digest=digest) == time // 30


def test_the_window_is_at_most_one_step() -> None:
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    now = 1_800_000_000
    assert matching_timecode(secret, totp.at(now - 30), now) == now // 30 - 1
    assert matching_timecode(secret, totp.at(now + 30), now) == now // 30 + 1
    assert matching_timecode(secret, totp.at(now - 60), now) is None
    assert matching_timecode(secret, totp.at(now - 60), now, window=5) is None  # capped at 1
    assert (
        matching_timecode(secret, "000000" if totp.at(now) != "000000" else "111111", now, window=0) is None
    )


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def setup() -> tuple[MfaService, FakeUsers, RecordingPublisher, Clock, str, list[str]]:
    users, publisher, clock = FakeUsers(), RecordingPublisher(), Clock()
    users.create(
        User(tenant_id="acme", username="alice", email="a@acme.example", roles=["viewer"], password_hash="x")
    )
    service = MfaService(users, PlainCipher(), publisher, lockout_seconds=600, clock=clock)  # type: ignore[arg-type]
    enrollment = service.enroll(users.get("acme", "alice"))  # type: ignore[arg-type]
    service.activate(users.get("acme", "alice"), pyotp.TOTP(enrollment.secret).at(clock()))  # type: ignore[arg-type]
    return service, users, publisher, clock, enrollment.secret, enrollment.backup_codes


def alice(users: FakeUsers) -> User:
    user = users.get("acme", "alice")
    assert user is not None
    return user


def test_enrolment_stores_the_secret_encrypted_and_the_codes_hashed(setup) -> None:  # type: ignore[no-untyped-def]
    _, users, _, _, secret, codes = setup
    user = alice(users)
    assert user.mfa_enrolled
    assert user.mfa_secret == b"acme/alice/" + secret.encode()  # went through the cipher
    assert len(codes) == 10
    assert len(set(codes)) == 10
    assert user.backup_code_hashes == {backup_code_hash("acme", "alice", c) for c in codes}
    assert not any(c in str(user.backup_code_hashes) for c in codes)


def test_a_time_step_is_accepted_once(setup) -> None:  # type: ignore[no-untyped-def]
    service, users, publisher, clock, secret, _ = setup
    clock.now += 30
    code = pyotp.TOTP(secret).at(clock())
    assert service.verify_code(alice(users), code) == ["pwd", "otp"]
    with pytest.raises(Unauthorized):
        service.verify_code(alice(users), code)  # the same code again: a replay
    assert publisher.alerts() == ["totp_replay"]
    # the activation's step (earlier) is refused too, the next step is accepted
    clock.now += 30
    assert service.verify_code(alice(users), pyotp.TOTP(secret).at(clock())) == ["pwd", "otp"]


def test_five_failures_lock_out_and_the_lock_lifts_after_its_duration(setup) -> None:  # type: ignore[no-untyped-def]
    service, users, publisher, clock, secret, _ = setup
    clock.now += 30
    good = pyotp.TOTP(secret).at(clock())
    wrong = "000000" if good != "000000" else "111111"
    for attempt in range(1, MAX_FAILURES + 1):
        error = Locked if attempt == MAX_FAILURES else Unauthorized
        with pytest.raises(error):
            service.verify_code(alice(users), wrong)
    assert publisher.alerts() == ["user_locked_out"]
    with pytest.raises(Locked) as locked:
        service.verify_code(alice(users), good)  # even the right code while locked
    assert locked.value.status == 423
    assert int(locked.value.headers["Retry-After"]) <= 600
    clock.now += 601
    assert service.verify_code(alice(users), pyotp.TOTP(secret).at(clock())) == ["pwd", "otp"]


def test_a_success_resets_the_failure_count(setup) -> None:  # type: ignore[no-untyped-def]
    service, users, _, clock, secret, _ = setup
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(Unauthorized):
            service.verify_code(
                alice(users), "999999" if pyotp.TOTP(secret).at(clock()) != "999999" else "888888"
            )
    clock.now += 30
    service.verify_code(alice(users), pyotp.TOTP(secret).at(clock()))
    assert alice(users).failed_attempts == 0


def test_a_backup_code_works_once(setup) -> None:  # type: ignore[no-untyped-def]
    service, users, _, _, _, codes = setup
    assert service.verify_backup_code(alice(users), codes[3].lower().replace("-", " ")) == ["pwd", "mfa"]
    with pytest.raises(Unauthorized):
        service.verify_backup_code(alice(users), codes[3])
    assert len(alice(users).backup_code_hashes) == 9
    with pytest.raises(Unauthorized):
        service.verify_backup_code(alice(users), "AAAA-BBBB-CCCC")
