"""Log-in throttling (issue 12: "30 wrong passwords in 14 s, no lockout, no delay").

django-axes counts failures per account and per client address, each against its own limit; a
locked-out visitor gets the log-in page again with a 429 and the time to retry, and an admin can
unlock from the lockouts page.
"""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.urls import reverse
from django.utils import timezone

from webapp.audit.models import AuditAction, AuditEvent

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")


def attempt(client, username, password, address="203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_thirty_wrong_passwords_lock_the_account_with_a_retry_time(client, student, settings):
    responses = [attempt(client, "ada", f"guess-{n}") for n in range(30)]
    statuses = [r.status_code for r in responses]
    limit = settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT
    # Failures below the limit are ordinary form errors; from the limit on, the lockout page.
    assert statuses[: limit - 1] == [200] * (limit - 1)
    assert statuses[limit - 1 :] == [429] * (30 - limit + 1)
    page = responses[-1].content.decode()
    assert "Too many failed log-ins" in page
    assert "try again at" in page
    assert f"for {settings.LOGIN_LOCKOUT_MINUTES} minutes" in page
    assert '<form method="post"' in page  # the site's own log-in page, not a bare 403
    # Attempts during the lockout are not counted: the end time stays where the limit put it.
    assert sum(AccessAttempt.objects.values_list("failures_since_start", flat=True)) == limit

    # The right password is refused too while the lock lasts, from any address.
    assert attempt(client, "ada", "right-password-1", address="198.51.100.1").status_code == 429


def test_lock_ends_after_the_cool_off(client, student, settings):
    for n in range(settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT):
        attempt(client, "ada", f"guess-{n}")
    assert attempt(client, "ada", "right-password-1").status_code == 429
    AccessAttempt.objects.update(
        attempt_time=timezone.now() - timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES + 1)
    )
    response = attempt(client, "ada", "right-password-1")
    assert response.status_code == 302


def test_one_address_trying_many_accounts_is_locked(client, student, settings):
    settings.LOGIN_FAILURE_LIMIT_PER_IP = 6
    statuses = [
        attempt(client, f"nobody-{n}", "x", address="203.0.113.9").status_code for n in range(6)
    ]
    assert statuses == [200] * 5 + [429]  # the sixth failure reaches the address limit
    # The address is locked, even for an account it never tried...
    assert attempt(client, "ada", "right-password-1", address="203.0.113.9").status_code == 429
    # ...while the same account from another address still logs in.
    assert attempt(client, "ada", "right-password-1", address="198.51.100.2").status_code == 302


def test_a_shared_address_is_not_locked_by_a_few_mistakes(client, student, settings):
    # A class behind one address: each mistake counts once towards the (higher) address limit.
    for n in range(settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT + 2):
        attempt(client, f"pupil-{n}", "typo")
    assert attempt(client, "ada", "right-password-1").status_code == 302


def test_admin_sees_and_unlocks_a_locked_account(client, student, admin, settings):
    for n in range(settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT):
        attempt(client, "ada", f"guess-{n}")
    assert attempt(client, "ada", "right-password-1").status_code == 429

    client.force_login(admin)
    page = client.get(reverse("accounts:lockouts")).content.decode()
    assert "<code>ada</code>" in page and "Unlock" in page
    response = client.post(
        reverse("accounts:lockout_unlock"), {"kind": "account", "value": "ada"}, follow=True
    )
    assert "Unlocked account ada." in response.content.decode()
    assert "No account or address is locked out." in response.content.decode()
    unlock = AuditEvent.objects.get(action=AuditAction.LOGIN_UNLOCKED)
    assert (unlock.actor, unlock.details["kind"], unlock.details["value"]) == (
        admin,
        "account",
        "ada",
    )
    client.logout()

    assert attempt(client, "ada", "right-password-1").status_code == 302


def test_only_admins_reach_the_lockouts_page(client, student):
    client.force_login(student)
    assert client.get(reverse("accounts:lockouts")).status_code == 403
    response = client.post(reverse("accounts:lockout_unlock"), {"kind": "account", "value": "x"})
    assert response.status_code == 403
