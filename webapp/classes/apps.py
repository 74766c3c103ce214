"""App configuration for webapp.classes."""

from django.apps import AppConfig


class ClassesConfig(AppConfig):
    name = "webapp.classes"
    label = "classes"
