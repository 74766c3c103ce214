"""App configuration for webapp.audit: connects the log-in signals on start."""

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "webapp.audit"
    label = "audit"

    def ready(self) -> None:
        from webapp.audit.receivers import connect_login_signals

        connect_login_signals()
