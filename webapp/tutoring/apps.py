"""App configuration for webapp.tutoring."""

from django.apps import AppConfig


class TutoringConfig(AppConfig):
    name = "webapp.tutoring"
    label = "tutoring"
