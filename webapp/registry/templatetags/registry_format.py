"""Formatting filters for the dashboard: accuracies as percentages, metric values, durations."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def pct(value: Any, digits: int = 1) -> str:
    """0.4567 → "45.7%"; anything that is not a number → "–"."""
    try:
        return f"{float(value) * 100:.{int(digits)}f}%"
    except (TypeError, ValueError):
        return "–"


@register.filter
def num(value: Any, digits: int = 3) -> str:
    """A metric value with `digits` significant digits."""
    try:
        return f"{float(value):.{int(digits)}g}"
    except (TypeError, ValueError):
        return "–"


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    """mapping[key] in a template (dict lookups by a variable key)."""
    try:
        return mapping.get(key)
    except AttributeError:
        return None
