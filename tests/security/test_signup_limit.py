"""Sign-up throttling: accounts created per client address are limited per hour and per day
(issue 12: "signup makes accounts free"), with a message that says when to retry."""

import pytest
from django.urls import reverse

from webapp.accounts.models import User

pytestmark = pytest.mark.django_db

SIGNUP = reverse("accounts:signup")


def sign_up(client, username, address):
    response = client.post(
        SIGNUP,
        {
            "username": username,
            "email": "",
            "password1": "a-long-enough-passphrase-42",
            "password2": "a-long-enough-passphrase-42",
            "role": "student",
        },
        REMOTE_ADDR=address,
    )
    client.logout()
    return response


def test_signups_from_one_address_stop_at_the_hourly_limit(client, settings):
    settings.SIGNUP_LIMIT_PER_IP_PER_HOUR = 3
    statuses = [sign_up(client, f"pupil{n}", "203.0.113.20").status_code for n in range(3)]
    assert statuses == [302, 302, 302]

    refused = sign_up(client, "pupil3", "203.0.113.20")
    assert refused.status_code == 429
    page = refused.content.decode()
    assert "Too many accounts were created from your network recently" in page
    assert "Try again after" in page
    assert not User.objects.filter(username="pupil3").exists()

    # Another address is not affected.
    assert sign_up(client, "pupil3", "198.51.100.20").status_code == 302


def test_the_daily_limit_applies_too(client, settings):
    settings.SIGNUP_LIMIT_PER_IP_PER_DAY = 1
    assert sign_up(client, "first", "203.0.113.21").status_code == 302
    assert sign_up(client, "second", "203.0.113.21").status_code == 429


def test_a_refused_form_does_not_use_up_the_limit(client, settings):
    settings.SIGNUP_LIMIT_PER_IP_PER_HOUR = 1
    mismatch = client.post(
        SIGNUP,
        {"username": "x1", "password1": "a-long-pass-1", "password2": "other", "role": "student"},
        REMOTE_ADDR="203.0.113.22",
    )
    assert mismatch.status_code == 200
    assert sign_up(client, "x1", "203.0.113.22").status_code == 302
