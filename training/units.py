"""Physical units for the answer checker: spelling, SI prefixes, conversion, and the unit a
problem's statement asks for.

A unit is read as a product of known symbols with integer powers ("kg/m^3", "m*s^-2", "mN",
"km/h"), each symbol an SI prefix (p n µ m c d k M G) on a prefixable base (m g s N J W Pa L
mol Hz A V C) or a unit without prefixes (min, h, %). Its quantity is its dimension vector, so any
two spellings of the same quantity convert ("12000 mN" is 12 N, "0.135 km" is 135 m) and two
quantities never do ("135 kg" is not a length). Words ("metres", "kilonewtons") and common
shorthands ("kph", "g/cc") are aliases of symbols.

`unit_from_statement` finds the unit a question asks for ("… in metres?", "(in N)", "Give your
answer in km/h."), for answer keys that carry no unit of their own.
"""

from __future__ import annotations

import re

# Dimensions: length, mass, time, amount of substance, electric current, percent.
_Dims = tuple[int, int, int, int, int, int]
_LENGTH: _Dims = (1, 0, 0, 0, 0, 0)
_MASS: _Dims = (0, 1, 0, 0, 0, 0)
_TIME: _Dims = (0, 0, 1, 0, 0, 0)
_AMOUNT: _Dims = (0, 0, 0, 1, 0, 0)
_CURRENT: _Dims = (0, 0, 0, 0, 1, 0)
_PERCENT: _Dims = (0, 0, 0, 0, 0, 1)

# symbol -> (dimensions, factor to SI, takes SI prefixes)
_BASES: dict[str, tuple[_Dims, float, bool]] = {
    "m": (_LENGTH, 1.0, True),
    "g": (_MASS, 1e-3, True),
    "s": (_TIME, 1.0, True),
    "min": (_TIME, 60.0, False),
    "h": (_TIME, 3600.0, False),
    "mol": (_AMOUNT, 1.0, True),
    "A": (_CURRENT, 1.0, True),
    "N": ((1, 1, -2, 0, 0, 0), 1.0, True),
    "J": ((2, 1, -2, 0, 0, 0), 1.0, True),
    "W": ((2, 1, -3, 0, 0, 0), 1.0, True),
    "Pa": ((-1, 1, -2, 0, 0, 0), 1.0, True),
    "Hz": ((0, 0, -1, 0, 0, 0), 1.0, True),
    "V": ((2, 1, -3, 0, -1, 0), 1.0, True),
    "C": ((0, 0, 1, 0, 1, 0), 1.0, True),
    "L": ((3, 0, 0, 0, 0, 0), 1e-3, True),
    "%": (_PERCENT, 1.0, False),
}
_PREFIXES = {
    "p": 1e-12,
    "n": 1e-9,
    "µ": 1e-6,
    "μ": 1e-6,
    "u": 1e-6,
    "m": 1e-3,
    "c": 1e-2,
    "d": 1e-1,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
}
_PREFIX_WORDS = {
    "pico": "p",
    "nano": "n",
    "micro": "µ",
    "milli": "m",
    "centi": "c",
    "deci": "d",
    "kilo": "k",
    "mega": "M",
    "giga": "G",
}
_BASE_WORDS = {
    "metre": "m",
    "meter": "m",
    "gram": "g",
    "gramme": "g",
    "second": "s",
    "sec": "s",
    "minute": "min",
    "hour": "h",
    "hr": "h",
    "mole": "mol",
    "ampere": "A",
    "amp": "A",
    "newton": "N",
    "joule": "J",
    "watt": "W",
    "pascal": "Pa",
    "hertz": "Hz",
    "volt": "V",
    "coulomb": "C",
    "litre": "L",
    "liter": "L",
    "percent": "%",
}
_ALIASES = {
    "ms^-1": "m/s",
    "ms^-2": "m/s^2",
    "m/s/s": "m/s^2",
    "m/s2": "m/s^2",
    "kph": "km/h",
    "km/hr": "km/h",
    "kmh^-1": "km/h",
    "g/cm3": "g/cm^3",
    "gcm^-3": "g/cm^3",
    "g/cc": "g/cm^3",
    "g/ml": "g/mL",
    "kg/m3": "kg/m^3",
    "kgm^-3": "kg/m^3",
    "cm3": "cm^3",
    "cc": "cm^3",
    "m3": "m^3",
    "m2": "m^2",
    "cm2": "cm^2",
    "ml": "mL",
    "l": "L",
    "g/mole": "g/mol",
    "gmol^-1": "g/mol",
    "mols": "mol",
    "secs": "s",
    "mins": "min",
    "hrs": "h",
}
_FACTOR_RE = re.compile(r"([A-Za-zµμ%]+)(?:\^(-?\d+))?")


def _symbol(symbol: str) -> tuple[_Dims, float] | None:
    """Dimensions and SI factor of one symbol, with or without a prefix ("kN", "mL", "min")."""
    if symbol in _BASES:
        dims, factor, _ = _BASES[symbol]
        return dims, factor
    prefix, base = symbol[:1], symbol[1:]
    if prefix in _PREFIXES and base in _BASES and _BASES[base][2]:
        dims, factor, _ = _BASES[base]
        return dims, factor * _PREFIXES[prefix]
    return None


def unit_dimensions(unit: str) -> tuple[_Dims, float] | None:
    """(dimensions, factor to SI) of a canonical unit ("kg/m^3", "m*s^-2"); None if unknown."""
    if not unit:
        return None
    numerator, *denominators = unit.split("/")
    dims = [0] * 6
    factor = 1.0
    for sign, part in [(1, numerator)] + [(-1, d) for d in denominators]:
        if not part:
            return None
        for piece in part.split("*"):
            match = _FACTOR_RE.fullmatch(piece)
            if not match:
                return None
            known = _symbol(match.group(1))
            if known is None:
                return None
            power = sign * int(match.group(2) or 1)
            for i, d in enumerate(known[0]):
                dims[i] += d * power
            factor *= known[1] ** power
    return (dims[0], dims[1], dims[2], dims[3], dims[4], dims[5]), factor


def _word_unit(word: str) -> str | None:
    """A spelled-out unit ("kilonewtons", "metres", "millilitre") as its symbol."""
    word = word.lower()
    candidates = [word]
    if word.endswith("es"):
        candidates.append(word[:-2])
    if word.endswith("s"):
        candidates.append(word[:-1])
    for candidate in candidates:
        if candidate in _BASE_WORDS:
            return _BASE_WORDS[candidate]
        for prefix_word, prefix in _PREFIX_WORDS.items():
            rest = candidate.removeprefix(prefix_word)
            if rest != candidate and rest in _BASE_WORDS and _BASES[_BASE_WORDS[rest]][2]:
                return prefix + _BASE_WORDS[rest]
    return None


def _clean_unit(unit: str) -> str:
    text = unit.strip().strip("$").strip()
    for _ in range(3):  # \text{m/s} -> m/s; wrappers may nest
        text = re.sub(r"\\(?:text|mathrm|textrm|mbox|operatorname)\s*\{([^{}]*)\}", r"\1", text)
    text = text.replace("\\,", " ").replace("\\ ", " ").replace("\\;", " ").replace("~", " ")
    text = text.replace("\\mu", "µ").replace("\\%", "%").replace("\\cdot", "*")
    text = text.replace("²", "^2").replace("³", "^3").replace("**", "^")
    return text.replace("{", "").replace("}", "").strip()


def normalise_unit(unit: str) -> str:
    """A unit written any common way ("\\text{ m s}^{-2}", "metres", "g/cm3", "mN") in canonical
    form ("m/s^2", "m", "g/cm^3", "mN"); unknown units come back cleaned but otherwise as
    written."""
    text = _clean_unit(unit)
    text = re.sub(r"\s*([/*^])\s*", r"\1", text)
    text = re.sub(r"\s+", "*", text.strip().rstrip("."))
    squashed = text.replace("*", "")
    for candidate in (text, squashed):
        if candidate in _ALIASES:
            return _ALIASES[candidate]
        if unit_dimensions(candidate) is not None:
            return _canonical(candidate)
    word = _word_unit(text)
    if word is not None:
        return word
    if "/" in text:  # "kilometres/hour", "metres per second" is not read
        top, _, bottom = text.partition("/")
        parts = [_word_unit(top) or top, _word_unit(bottom) or bottom]
        joined = "/".join(parts)
        if unit_dimensions(joined) is not None:
            return _canonical(joined)
    for candidate in (text.lower(), squashed.lower()):
        if candidate in _ALIASES:
            return _ALIASES[candidate]
        if unit_dimensions(candidate) is not None:
            return _canonical(candidate)
    return text


def _canonical(unit: str) -> str:
    """ "m*s^-1" -> "m/s", "m*s^-2" -> "m/s^2": negative powers written as a denominator."""
    if "/" in unit:
        return unit
    pieces = unit.split("*")
    top, bottom = [], []
    for piece in pieces:
        match = _FACTOR_RE.fullmatch(piece)
        if match and match.group(2) and match.group(2).startswith("-"):
            power = match.group(2)[1:]
            bottom.append(match.group(1) + ("" if power == "1" else f"^{power}"))
        else:
            top.append(piece)
    if not bottom or not top:
        return unit
    return "*".join(top) + "/" + "/".join(bottom)


def known_unit(unit: str) -> bool:
    """Does the checker know this (canonical) unit, so it can convert to and from it?"""
    return unit_dimensions(unit) is not None


def convert(value: float, from_unit: str, to_unit: str) -> float | None:
    """value in from_unit expressed in to_unit, or None when they measure different things."""
    if from_unit == to_unit:
        return value
    source, target = unit_dimensions(from_unit), unit_dimensions(to_unit)
    if source is None or target is None or source[0] != target[0]:
        return None
    return value * source[1] / target[1]


# "in metres?", "in m.", "(in N)", "in units of km/h", "Give your answer in cm^3": the phrase
# "in <unit>" closing a sentence or a bracket. The unit's pieces are split at each "/" and no
# piece holds one, so there is one way to read "a/a/a…": the earlier pattern let a piece hold
# slashes too, tried every split, and took 12 s of one uninterrupted match (the whole server
# process) on an 18 KB statement "in a/a/a…/a x".
_ASKED_UNIT_RE = re.compile(
    r"\bin\s+(?:units\s+of\s+)?(\$?[\\A-Za-zµμ%][^\s?!.,;:()/]*(?:\s*/\s*[^\s?!.,;:()/]+)*)"
    r"\s*(?=[?!.,;:)]|$)"
)


# Any "in <word>", to notice a statement that offers two units ("in metres or in seconds?").
_ANY_IN_UNIT_RE = re.compile(r"\bin\s+([A-Za-zµμ%][^\s?!.,;:()]*)")


def _known(phrases: list[str]) -> set[str]:
    return {unit for unit in map(normalise_unit, phrases) if known_unit(unit)}


def unit_from_statement(statement: str) -> str | None:
    """The unit a question asks its answer in ("How far is it, in metres?" -> "m"), when the
    statement names exactly one unit the checker knows that way; None otherwise."""
    asked = _known([m.group(1) for m in _ASKED_UNIT_RE.finditer(statement)])
    mentioned = _known([m.group(1) for m in _ANY_IN_UNIT_RE.finditer(statement)])
    return asked.pop() if len(asked) == 1 and len(mentioned | asked) == 1 else None


_QUANTITY_NAMES: dict[_Dims, str] = {
    _LENGTH: "a length",
    _MASS: "a mass",
    _TIME: "a time",
    _AMOUNT: "an amount of substance",
    _CURRENT: "an electric current",
    _PERCENT: "a percentage",
    (1, 0, -1, 0, 0, 0): "a speed",
    (1, 0, -2, 0, 0, 0): "an acceleration",
    (1, 1, -2, 0, 0, 0): "a force",
    (2, 1, -2, 0, 0, 0): "an energy",
    (2, 1, -3, 0, 0, 0): "a power",
    (-1, 1, -2, 0, 0, 0): "a pressure",
    (0, 0, -1, 0, 0, 0): "a frequency",
    (2, 0, 0, 0, 0, 0): "an area",
    (3, 0, 0, 0, 0, 0): "a volume",
    (-3, 1, 0, 0, 0, 0): "a density",
    (0, 1, 0, -1, 0, 0): "a molar mass",
}


def quantity_of(unit: str) -> str | None:
    """What a unit measures, in words ("kg" -> "a mass", "km/h" -> "a speed"); None if the unit
    is unknown or its quantity has no everyday name."""
    known = unit_dimensions(normalise_unit(unit)) if unit else None
    return _QUANTITY_NAMES.get(known[0]) if known else None


def unit_mismatch(answer_unit: str, wanted_unit: str) -> str | None:
    """Why an answer's unit cannot be the one asked for, as a sentence for the student ("kg
    measures a mass, but the question asks for a length (m)."); None when the two measure the
    same quantity, or when either is unknown (then nothing can be said for sure)."""
    answer = unit_dimensions(normalise_unit(answer_unit)) if answer_unit else None
    wanted = unit_dimensions(normalise_unit(wanted_unit)) if wanted_unit else None
    if answer is None or wanted is None or answer[0] == wanted[0]:
        return None
    answer_quantity = _QUANTITY_NAMES.get(answer[0], "another quantity")
    wanted_quantity = _QUANTITY_NAMES.get(wanted[0], "another quantity")
    return (
        f"{answer_unit.strip()} measures {answer_quantity}, but the question asks for "
        f"{wanted_quantity} ({wanted_unit.strip()})."
    )
