"""Log-in signals become audit rows: a failed log-in through the real form (Django's
`user_login_failed`), and a lock-out announced by django-axes (`user_locked_out`)."""

import pytest
from django.apps import apps
from django.test import RequestFactory
from django.urls import reverse

from webapp.accounts.services import user_create
from webapp.audit.models import AuditEvent
from webapp.audit.receivers import record_locked_out

pytestmark = pytest.mark.django_db


def test_a_failed_login_is_recorded_with_the_name_typed_and_no_password(client):
    user_create(username="victim", password="right-password-1", validate=False)
    response = client.post(
        reverse("accounts:login"),
        {"username": "victim", "password": "wrong-password"},
        REMOTE_ADDR="198.51.100.9",
    )
    assert response.status_code == 200  # the form again, with its error
    event = AuditEvent.objects.get(action="login.failed")
    assert event.actor is None and event.actor_username == "victim"
    assert event.details == {"username": "victim"} and event.ip == "198.51.100.9"
    assert "wrong-password" not in str(event.details)


def test_a_successful_login_writes_nothing(client):
    user_create(username="ok", password="right-password-1", validate=False)
    client.post(reverse("accounts:login"), {"username": "ok", "password": "right-password-1"})
    assert not AuditEvent.objects.exists()


def test_an_overlong_typed_name_is_cut(client):
    client.post(reverse("accounts:login"), {"username": "x" * 5000, "password": "p"})
    event = AuditEvent.objects.get(action="login.failed")
    assert len(event.actor_username) == 150


def test_a_lockout_is_recorded():
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR="203.0.113.5")
    record_locked_out(sender=None, request=request, username="victim", ip_address="203.0.113.5")
    event = AuditEvent.objects.get(action="login.locked_out")
    assert (event.actor_username, event.ip) == ("victim", "203.0.113.5")


@pytest.mark.skipif(not apps.is_installed("axes"), reason="django-axes is not installed here")
def test_axes_lockouts_reach_the_receiver():
    from axes.signals import user_locked_out

    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR="203.0.113.6")
    user_locked_out.send(
        sender="axes", request=request, username="victim", ip_address="203.0.113.6"
    )
    assert AuditEvent.objects.filter(action="login.locked_out", ip="203.0.113.6").exists()
