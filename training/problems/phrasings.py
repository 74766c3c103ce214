"""Problem statements worded the way students and teachers write them, for SFT and evaluation.

The generators word every problem one way ("Compute 347 + 285."). Real statements do not: they
ask questions, give commands or tell a short story, write `*`, `x`, `×`, "times" or LaTeX's
`\\times`, wrap maths in `$…$` or `\\(…\\)`, use `\\frac{a}{b}` and `\\%`, give units as `m/s^2`,
`m/s²` or "metres per second", drop capitals and full stops and make typos. `rephrase` reads the
fields back out of a generated statement (each topic's statements follow a few fixed forms) and
writes the same problem through one of that topic's templates, then adds surface noise. The
answer, worked solution and held-out split stay the generator's: the split hashes the original
statement (`split_text`), so a held-out problem is never trained in any wording.

Each topic's templates are split by a fixed rule into `train` and `unseen`: training draws only
from `train`, and evaluation measures generalisation to new *wording* (not new numbers) on the
`unseen` ones. Surface noise (operator spelling, LaTeX, units, case, punctuation, typos) is
shared by both sets.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal

from training.problems.base import Domain, Problem
from training.problems.registry import eval_set, training_problems

Split = Literal["train", "unseen"]
SPLITS: tuple[Split, ...] = ("train", "unseen")

# One template in four (by position in its list) is never trained: about a quarter of every
# topic's wordings measure generalisation.
_UNSEEN_EVERY = 4
_UNSEEN_AT = 1

# --- surface renderings -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Style:
    """How one statement writes its maths: drawn once per statement so it is consistent."""

    times: str  # " * ", "*", " x ", " × ", " times ", " \\times "
    divide: str
    minus: str
    latex: str  # "" (plain), "$" or "\\("
    units: str  # "plain", "unicode", "words"

    def wrap(self, maths: str) -> str:
        if self.latex == "$":
            return f"${maths}$"
        if self.latex == "\\(":
            return f"\\({maths}\\)"
        return maths


def draw_style(rng: random.Random) -> Style:
    latex = rng.choices(["", "$", "\\("], weights=[0.6, 0.3, 0.1])[0]
    if latex:
        times = rng.choice([" \\times ", "\\times ", " \\cdot ", " * ", " \\times "])
        divide = rng.choice([" \\div ", " / ", "\\div "])
        minus = rng.choice([" - ", "-"])
    else:
        times = rng.choice([" * ", "*", " x ", "x", " × ", "×", " times ", " X ", " · "])
        divide = rng.choice([" / ", "/", " ÷ ", "÷", " divided by "])
        minus = rng.choice([" - ", "-", " − ", " minus "])
    units = rng.choices(["plain", "unicode", "words"], weights=[0.45, 0.25, 0.3])[0]
    return Style(times=times, divide=divide, minus=minus, latex=latex, units=units)


def _plus(style: Style, rng: random.Random) -> str:
    if style.latex:
        return rng.choice([" + ", "+"])
    return rng.choice([" + ", "+", " + ", " plus "])


def render_expression(expression: str, style: Style, rng: random.Random) -> str:
    """A generator's expression ("3 + 4 * (5 - 2)", "3/4 * 5/6") in the style's operators.

    Fractions `a/b` between numbers become `\\frac{a}{b}` under LaTeX (or stay `a/b`); a
    division sign written alone (" / ") becomes the style's divide.
    """
    if style.latex:
        expression = re.sub(r"(\d+)/(\d+)", r"\\frac{\1}{\2}", expression)
    pieces = re.split(r"( \+ | - | \* | / )", expression)
    out = []
    for piece in pieces:
        if piece == " + ":
            out.append(_plus(style, rng))
        elif piece == " - ":
            out.append(style.minus)
        elif piece == " * ":
            out.append(style.times)
        elif piece == " / ":
            out.append(style.divide)
        else:
            out.append(piece)
    return style.wrap("".join(out))


_UNIT_WORDS: dict[str, tuple[str, ...]] = {
    "m/s^2": ("metres per second squared", "meters per second squared", "m per s^2"),
    "m/s": ("metres per second", "meters per second", "m per s"),
    "km/h": ("kilometres per hour", "kilometers per hour", "km per hour"),
    "g/cm^3": ("grams per cubic centimetre", "g per cm^3", "grams per cm^3"),
    "kg/m^3": ("kilograms per cubic metre", "kg per cubic meter"),
    "cm^3": ("cubic centimetres", "cubic centimeters", "cm cubed"),
    "g/mol": ("grams per mole", "g per mol"),
    "km": ("kilometres", "kilometers"),
    "m": ("metres", "meters"),
    "cm": ("centimetres", "centimeters"),
    "kg": ("kilograms", "kilos"),
    "g": ("grams",),
    "L": ("litres", "liters"),
    "mL": ("millilitres", "milliliters", "ml"),
    "min": ("minutes", "mins"),
    "h": ("hours", "hrs"),
    "s": ("seconds", "secs"),
    "N": ("newtons", "Newtons"),
    "mol": ("moles", "mols"),
}
_UNIT_UNICODE = {"m/s^2": ("m/s²",), "g/cm^3": ("g/cm³",), "cm^3": ("cm³",)}
_UNIT_UNICODE["kg/m^3"] = ("kg/m³",)
_UNIT_LATEX = {"m/s^2": "m/s$^2$", "g/cm^3": "g/cm$^3$", "cm^3": "cm$^3$", "kg/m^3": "kg/m$^3$"}


def render_unit(unit: str, style: Style, rng: random.Random) -> str:
    """One unit written as the style says: `m/s^2`, `m/s²` (or LaTeX `m/s$^2$`), or words."""
    if style.units == "words" and unit in _UNIT_WORDS:
        return rng.choice(_UNIT_WORDS[unit])
    if style.units == "unicode":
        if unit in _UNIT_UNICODE:
            return rng.choice(_UNIT_UNICODE[unit])
        if style.latex and unit in _UNIT_LATEX:
            return _UNIT_LATEX[unit]
    return unit


# --- templates ----------------------------------------------------------------------------

# Frames shared by the topics whose statement is one expression to work out; {e} is the
# expression as the style writes it.
_EXPRESSION_FRAMES = (
    "What is {e}?",
    "what's {e}",
    "Calculate {e}.",
    "calculate {e}",
    "Evaluate {e}.",
    "Work out {e}.",
    "Find {e}.",
    "{e} = ?",
    "{e} =",
    "{e}",
    "How much is {e}?",
    "What does {e} equal?",
    "What is the value of {e}?",
    "Can you work out {e}?",
    "Please calculate {e}.",
    "Solve {e}.",
    "help me with {e}",
    "I need the answer to {e}",
    "Quick question: what is {e}?",
    "What do you get for {e}?",
    "Give the result of {e}.",
    "Determine {e}.",
    "Show me how to do {e}.",
    "Find the value of {e}.",
    "{e} equals what?",
    "whats {e}??",
    "Q: {e}",
    "Do {e} for me please",
    "My teacher asked {e}. What is the answer?",
    "Simplify {e}.",
)

_ADDITION = (
    "What is the sum of {a} and {b}?",
    "Add {a} and {b}.",
    "add {a} and {b}",
    "What is {a} plus {b}?",
    "{a} plus {b}",
    "Find the total of {a} and {b}.",
    "What do you get when you add {a} and {b}?",
    "Sum {a} and {b}.",
    "Increase {a} by {b}.",
    "A jar has {a} marbles and {b} more are put in. How many marbles are in the jar now?",
    "There are {a} pupils in one hall and {b} in another. How many pupils are there altogether?",
    "A farmer picks {a} apples on Monday and {b} on Tuesday. How many apples is that in total?",
    "{a} and {b} together make how many?",
)
_SUBTRACTION = (
    "What is {a} minus {b}?",
    "Subtract {b} from {a}.",
    "subtract {b} from {a}",
    "Take {b} away from {a}.",
    "What is the difference {a} minus {b}?",
    "{a} minus {b}",
    "How much is left if you take {b} from {a}?",
    "Decrease {a} by {b}.",
    "What do you get when you subtract {b} from {a}?",
    "A tank holds {a} litres and {b} litres leak out. How many litres are left?",
    "A shop had {a} pens and sold {b}. How many pens are left?",
    "Start at {a} and count back {b}. Where do you end up?",
)
_MULTIPLICATION = (
    "What is {a} times {b}?",
    "Multiply {a} by {b}.",
    "multiply {a} by {b}",
    "What is the product of {a} and {b}?",
    "{a} times {b}",
    "{a} multiplied by {b} is?",
    "Find the product of {a} and {b}.",
    "What do you get when you multiply {a} by {b}?",
    "There are {a} rows of chairs with {b} chairs in each row. How many chairs are there?",
    "Each box has {a} pencils. How many pencils are in {b} boxes?",
    "A ticket costs {a} dollars. How much do {b} tickets cost?",
    "{b} lots of {a} makes how many?",
)
_ORDER = (
    "Use the order of operations to work out {e}.",
    "Evaluate {e} (remember BODMAS).",
    "What is {e}? Watch the order of operations.",
    "Compute the value of {e} using PEMDAS.",
    "Work out {e} carefully.",
)
_FRACTIONS = (
    "Work out {e} and simplify.",
    "Simplify {e} as a fraction.",
    "What is {e} in simplest form?",
    "Find {e}. Give the answer as a fraction.",
    "Calculate {e} and write it as a fraction.",
    "{e} in lowest terms?",
)
_PERCENT_OF = (
    "What is {pc} of {n}?",
    "what is {pc} of {n}",
    "Find {pc} of {n}.",
    "Calculate {p} percent of {n}.",
    "What is {p} percent of {n}?",
    "{pc} of {n} = ?",
    "{pc} of {n}",
    "How much is {pc} of {n}?",
    "Work out {pc} of {n}.",
    "Find {p} per cent of {n}.",
    "What number is {pc} of {n}?",
    "Take {pc} of {n}.",
    "A class has {n} students and {pc} of them walk to school. How many students walk?",
    "A survey asked {n} people and {pc} said yes. How many people said yes?",
    "A shop has {n} items and {pc} are on sale. How many items are on sale?",
    "Out of {n} tickets, {pc} were sold. How many were sold?",
    "A school has {n} pupils; {pc} play football. How many play football?",
    "Determine {pc} of {n}.",
    "What's {pc} of {n}?",
    "Compute {p} percent of {n}.",
    "{p} percent of {n} is what?",
)
_PERCENT_CHANGE = (
    "A price of {n} is {change} by {pc}. What is the new price?",
    "A {item} costs {n}. Its price is {change} by {pc}. What does it cost now?",
    "The price {n} goes {direction} by {pc}. Find the new price.",
    "{n} {change} by {pc} is what?",
    "What is {n} after a {pc} {noun}?",
    "A {item} was {n} dollars. After a {pc} {noun}, what is the price?",
    "Find the new price when {n} is {change} by {p} percent.",
    "A shop {verb} a price of {n} by {pc}. What is the new price?",
)
_LINEAR = (
    "Solve {q}.",
    "solve {q}",
    "Solve for x: {q}",
    "Find x if {q}.",
    "Find x: {q}",
    "What is x if {q}?",
    "If {q}, what is x?",
    "{q}, find x.",
    "{q}. Solve for x.",
    "Solve the equation {q}.",
    "What value of x makes {q} true?",
    "Find the value of x when {q}.",
    "x = ? if {q}",
    "Work out x: {q}",
    "Given {q}, find x.",
    "solve for x {q}",
    "Determine x such that {q}.",
    "{q}. What is x?",
    "Help me solve {q}",
    "I think of a number x. {q}. What is x?",
    "Find the unknown x in {q}.",
    "Calculate x given that {q}.",
)
_WORD_GETS = (
    "{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?",
    "{name} had {a} {item}. A friend gave {name} {b} more. How many {item} now?",
    "{name} has {a} {item} and buys {b} more. How many {item} are there in total?",
    "If {name} has {a} {item} and finds {b} more, how many {item} does {name} have?",
    "{name} collects {a} {item}, then {b} more. How many {item} altogether?",
    "There are {a} {item} in a bag and {name} adds {b}. How many {item} are in the bag?",
)
_WORD_GIVES = (
    "{name} has {a} {item} and gives away {b}. How many {item} are left?",
    "{name} had {a} {item} and lost {b}. How many {item} does {name} have left?",
    "{name} starts with {a} {item} and gives {b} to a friend. How many {item} remain?",
    "If {name} has {a} {item} and uses {b}, how many are left?",
    "There were {a} {item}. {name} took {b}. How many {item} are still there?",
    "{name} owns {a} {item} and sells {b} of them. How many {item} remain?",
)
_WORD_BOXES = (
    "A box holds {a} {item}. How many {item} are in {k} boxes?",
    "Each box has {a} {item}. How many {item} are in {k} boxes?",
    "There are {a} {item} in every box. {name} has {k} boxes. How many {item} is that?",
    "One box contains {a} {item}. How many {item} do {k} boxes contain?",
    "{k} boxes each hold {a} {item}. How many {item} in total?",
    "If a box has {a} {item}, how many {item} are in {k} boxes?",
)
_WORD_PACKS = (
    "{name} buys {k} packs of {a} {item} and gives away {b}. How many {item} are left?",
    "{name} gets {k} packs with {a} {item} in each, then gives {b} away. How many {item} remain?",
    "There are {k} packs of {a} {item}. {name} gives away {b}. How many {item} are left?",
    "{name} bought {k} packs of {a} {item} and lost {b}. How many {item} does {name} have?",
    "Each pack has {a} {item}. {name} buys {k} packs and hands out {b}. How many are left?",
    "If {name} has {k} packs of {a} {item} and gives {b} away, how many {item} are left?",
)
_CONVERT = (
    "Convert {k} {u1} to {u2}.",
    "convert {k} {u1} to {u2}",
    "How many {u2} are in {k} {u1}?",
    "How many {u2} is {k} {u1}?",
    "What is {k} {u1} in {u2}?",
    "Express {k} {u1} in {u2}.",
    "{k} {u1} = ? {u2}",
    "{k} {u1} in {u2}?",
    "Change {k} {u1} into {u2}.",
    "Write {k} {u1} in {u2}.",
    "Turn {k} {u1} into {u2}.",
    "{k} {u1} is how many {u2}?",
    "What is {k} {u1} expressed in {u2}?",
    "Convert {k} {u1} into {u2}, please.",
    "A measurement of {k} {u1}: what is it in {u2}?",
    "I have {k} {u1}. How much is that in {u2}?",
    "Rewrite {k} {u1} using {u2}.",
    "Give {k} {u1} in {u2}.",
    "Find {k} {u1} in {u2}.",
    "How many {u2} make {k} {u1}?",
    "Can you convert {k} {u1} to {u2}?",
    "unit conversion: {k} {u1} to {u2}",
)
_SPEED = (
    "A {mover} travels {d} {m} in {t} {s}. What is its speed in {ms}?",
    "How fast is a {mover} that covers {d} {m} in {t} {s}? Give the speed in {ms}.",
    "A {mover} goes {d} {m} in {t} {s}. Find its average speed in {ms}.",
    "What is the speed in {ms} of a {mover} moving {d} {m} in {t} {s}?",
    "Calculate the speed ({ms}) of a {mover} that travels {d} {m} in {t} {s}.",
    "{d} {m} in {t} {s}: what is the speed in {ms}?",
    "If a {mover} covers {d} {m} in {t} {s}, what is its speed in {ms}?",
)
_DISTANCE = (
    "A {mover} moves at {v} {ms} for {t} {s}. How far does it go in {m}?",
    "How far (in {m}) does a {mover} travel at {v} {ms} for {t} {s}?",
    "A {mover} keeps a speed of {v} {ms} for {t} {s}. Find the distance in {m}.",
    "What distance in {m} is covered at {v} {ms} in {t} {s}?",
    "Find the distance in {m} a {mover} goes in {t} {s} at {v} {ms}.",
    "At {v} {ms}, how many {m} does a {mover} cover in {t} {s}?",
    "A {mover} travels for {t} {s} at {v} {ms}. How far does it go, in {m}?",
)
_ACCELERATION = (
    "A {mover} speeds up from {u} {ms} to {v} {ms} in {t} {s}. What is its acceleration in {mss}?",
    "Find the acceleration in {mss} of a {mover} going from {u} {ms} to {v} {ms} in {t} {s}.",
    "A {mover}'s speed rises from {u} {ms} to {v} {ms} over {t} {s}. "
    "Calculate its acceleration ({mss}).",
    "What is the acceleration ({mss}) if velocity changes from {u} {ms} to {v} {ms} in {t} {s}?",
    "In {t} {s} a {mover} goes from {u} {ms} to {v} {ms}. What is its acceleration in {mss}?",
    "A {mover} accelerates from {u} {ms} to {v} {ms} in {t} {s}. Acceleration in {mss}?",
)
_SUVAT = (
    "A {mover} starts {start} and accelerates at {a} {mss} for {t} {s}. How far does it go in {m}?",
    "Starting {start}, a {mover} accelerates at {a} {mss} for {t} {s}. "
    "Find the distance travelled in {m}.",
    "How far (in {m}) does a {mover} go in {t} {s} if it starts {start} "
    "and accelerates at {a} {mss}?",
    "A {mover} starts {start} with acceleration {a} {mss}. What distance in {m} does it "
    "cover in {t} {s}?",
    "Find the displacement in {m} after {t} {s} of a {mover} starting {start} "
    "with acceleration {a} {mss}.",
    "A {mover} accelerates at {a} {mss} for {t} {s}, starting {start}. Distance in {m}?",
)
_FORCE_FMA = (
    "A {m} {kg} box accelerates at {a} {mss}. What is the net force in {N}?",
    "What net force in {N} gives a {m} {kg} box an acceleration of {a} {mss}?",
    "Find the force in {N} needed to accelerate a {m} {kg} mass at {a} {mss}.",
    "A box of mass {m} {kg} accelerates at {a} {mss}. Calculate the net force ({N}).",
    "F = ? for m = {m} {kg} and a = {a} {mss} (answer in {N})",
    "How much force in {N} accelerates a {m} {kg} box at {a} {mss}?",
)
_FORCE_AFM = (
    "A net force of {f} {N} acts on a {m} {kg} mass. What is its acceleration in {mss}?",
    "What acceleration in {mss} does a force of {f} {N} give a {m} {kg} mass?",
    "A {m} {kg} object feels a net force of {f} {N}. Find its acceleration in {mss}.",
    "Find a in {mss} when F = {f} {N} and m = {m} {kg}.",
    "A force of {f} {N} pushes a {m} {kg} cart. Calculate its acceleration ({mss}).",
    "How fast (in {mss}) does a {m} {kg} mass accelerate under a net force of {f} {N}?",
)
_WEIGHT = (
    "What is the weight in {N} of a {m} {kg} mass? Use g = 9.8 {mss}.",
    "Find the weight in {N} of a {m} {kg} object (g = 9.8 {mss}).",
    "Calculate the weight ({N}) of a {m} {kg} bag, taking g = 9.8 {mss}.",
    "How much does a {m} {kg} mass weigh in {N}? Take g = 9.8 {mss}.",
    "With g = 9.8 {mss}, what is the weight in {N} of {m} {kg}?",
    "A {m} {kg} box sits on the floor. What is its weight in {N}? g = 9.8 {mss}",
)
_FRICTION = (
    "A {m} {kg} box is pushed with {push} {N} against {friction} {N} of friction. "
    "What is its acceleration in {mss}?",
    "A push of {push} {N} acts on a {m} {kg} box; friction is {friction} {N}. "
    "Find the acceleration in {mss}.",
    "Someone pushes a {m} {kg} crate with {push} {N}. Friction is {friction} {N}. "
    "What is the acceleration ({mss})?",
    "What is the acceleration in {mss} of a {m} {kg} box pushed with {push} {N} "
    "if friction is {friction} {N}?",
    "Friction of {friction} {N} opposes a {push} {N} push on a {m} {kg} box. "
    "Acceleration in {mss}?",
    "A {m} {kg} sled is pulled with {push} {N} against {friction} {N} of friction. "
    "How fast does it accelerate in {mss}?",
)
_DENSITY_RHO = (
    "A block has mass {m} {g} and volume {vol} {cm3}. What is its density in {gcm3}?",
    "What is the density in {gcm3} of a block with mass {m} {g} and volume {vol} {cm3}?",
    "Find the density ({gcm3}) of an object of mass {m} {g} and volume {vol} {cm3}.",
    "A {m} {g} block takes up {vol} {cm3}. Calculate its density in {gcm3}.",
    "mass = {m} {g}, volume = {vol} {cm3}. Density in {gcm3}?",
    "Calculate the density in {gcm3} if m = {m} {g} and V = {vol} {cm3}.",
)
_DENSITY_MASS = (
    "A liquid has density {rho} {gcm3}. What is the mass in {g} of {vol} {cm3}?",
    "Find the mass in {g} of {vol} {cm3} of a liquid with density {rho} {gcm3}.",
    "What mass ({g}) has {vol} {cm3} of a liquid of density {rho} {gcm3}?",
    "The density of a liquid is {rho} {gcm3}. How many {g} do {vol} {cm3} weigh?",
    "Calculate the mass in {g} of {vol} {cm3} when the density is {rho} {gcm3}.",
    "{vol} {cm3} of a liquid with density {rho} {gcm3}: mass in {g}?",
)
_DENSITY_VOLUME = (
    "A metal has density {rho} {gcm3}. What volume in {cm3} has mass {m} {g}?",
    "Find the volume in {cm3} of {m} {g} of a metal whose density is {rho} {gcm3}.",
    "What volume ({cm3}) does {m} {g} of a metal of density {rho} {gcm3} take up?",
    "A metal's density is {rho} {gcm3}. How many {cm3} is {m} {g} of it?",
    "Calculate the volume in {cm3} of a {m} {g} piece of metal with density {rho} {gcm3}.",
    "{m} {g} of metal, density {rho} {gcm3}: volume in {cm3}?",
)
_DENSITY_KG = (
    "A stone has mass {kgm} {kg} and volume {vol} {cm3}. What is its density in {gcm3}?",
    "Find the density in {gcm3} of a stone of mass {kgm} {kg} and volume {vol} {cm3}.",
    "A {kgm} {kg} stone has a volume of {vol} {cm3}. Calculate its density ({gcm3}).",
    "What is the density ({gcm3}) of a rock with mass {kgm} {kg} and volume {vol} {cm3}?",
    "mass {kgm} {kg}, volume {vol} {cm3}. What is the density in {gcm3}?",
    "A stone weighs {kgm} {kg} and fills {vol} {cm3}. Density in {gcm3}?",
)
_MOLAR = (
    "Find the molar mass of {formula} in {gmol}. {given}",
    "What is the molar mass of {formula} in {gmol}? {given}",
    "Calculate the molar mass of {formula} ({gmol}). {given}",
    "molar mass of {formula}? {given}",
    "Work out the molar mass of {formula} in {gmol}. {given}",
    "{given} What is the molar mass of {formula} in {gmol}?",
    "How many {gmol} is the molar mass of {formula}? {given}",
)
_MOLAR_MASS_OF_MOL = (
    "What is the mass in {g} of {k} mol of {formula}? {given}",
    "Find the mass in {g} of {k} moles of {formula}. {given}",
    "How many {g} do {k} mol of {formula} weigh? {given}",
    "Calculate the mass ({g}) of {k} mol of {formula}. {given}",
    "{given} What is the mass of {k} mol of {formula} in {g}?",
    "mass of {k} mol of {formula} in {g}? {given}",
    "What do {k} moles of {formula} weigh in {g}? {given}",
)
_MOLAR_MOLES = (
    "How many mol are in {grams} {g} of {formula}? {given}",
    "How many moles are in {grams} {g} of {formula}? {given}",
    "Find the number of moles in {grams} {g} of {formula}. {given}",
    "Calculate the amount in mol of {grams} {g} of {formula}. {given}",
    "{given} How many mol of {formula} are in {grams} {g}?",
    "{grams} {g} of {formula} is how many mol? {given}",
    "What amount of substance (mol) is {grams} {g} of {formula}? {given}",
)

TEMPLATES: dict[str, tuple[str, ...]] = {
    "addition": _EXPRESSION_FRAMES + _ADDITION,
    "subtraction": _EXPRESSION_FRAMES + _SUBTRACTION,
    "multiplication": _EXPRESSION_FRAMES + _MULTIPLICATION,
    "order_of_operations": _EXPRESSION_FRAMES + _ORDER,
    "fractions": _EXPRESSION_FRAMES + _FRACTIONS,
    "percentages": _PERCENT_OF + _PERCENT_CHANGE,
    "linear_equations": _LINEAR,
    "word_problems": _WORD_GETS + _WORD_GIVES + _WORD_BOXES + _WORD_PACKS,
    "unit_conversion": _CONVERT,
    "kinematics": _SPEED + _DISTANCE + _ACCELERATION + _SUVAT,
    "force": _FORCE_FMA + _FORCE_AFM + _WEIGHT + _FRICTION,
    "density": _DENSITY_RHO + _DENSITY_MASS + _DENSITY_VOLUME + _DENSITY_KG,
    "molar_mass": _MOLAR + _MOLAR_MASS_OF_MOL + _MOLAR_MOLES,
}
TEMPLATES["multiple_choice"] = TEMPLATES["unit_conversion"] + TEMPLATES["kinematics"]
TEMPLATES["multiple_choice"] += TEMPLATES["force"] + TEMPLATES["density"]


def split_of(templates: Sequence[str], template: str) -> Split:
    """Which side of the wording split a template is on (by its first position in its list)."""
    index = list(templates).index(template)
    return "unseen" if index % _UNSEEN_EVERY == _UNSEEN_AT else "train"


def templates_for(form: Sequence[str], split: Split) -> list[str]:
    """The templates of one statement form on one side of the split."""
    return [t for t in form if split_of(form, t) == split]


# --- reading a generated statement back ---------------------------------------------------

_N = r"(-?\d+(?:\.\d+)?)"


@dataclasses.dataclass(frozen=True)
class Form:
    """One fixed statement form of a generator: its pattern and the templates that reword it."""

    pattern: re.Pattern[str]
    templates: tuple[str, ...]
    render: Callable[[dict[str, str], Style, random.Random], dict[str, str]]


def _units(**names: str) -> Callable[[dict[str, str], Style, random.Random], dict[str, str]]:
    """A renderer that writes the named unit slots ({ms}: "m/s" …) in the statement's style."""

    def render(fields: dict[str, str], style: Style, rng: random.Random) -> dict[str, str]:
        return {**fields, **{slot: render_unit(unit, style, rng) for slot, unit in names.items()}}

    return render


def _expression(fields: dict[str, str], style: Style, rng: random.Random) -> dict[str, str]:
    expression = fields["expr"]
    plain = {"a": fields.get("a", ""), "b": fields.get("b", "")}
    return {**plain, "e": render_expression(expression, style, rng)}


def _linear(fields: dict[str, str], style: Style, rng: random.Random) -> dict[str, str]:
    equation = fields["eq"]
    if style.latex:
        return {"q": style.wrap(equation)}
    if rng.random() < 0.2:
        equation = re.sub(r"(\d)x", r"\1*x", equation)
    if rng.random() < 0.3:
        equation = equation.replace(" ", "")
    elif "-" in style.minus and rng.random() < 0.3:
        equation = equation.replace(" - ", style.minus)
    return {"q": equation}


def _percent(fields: dict[str, str], style: Style, rng: random.Random) -> dict[str, str]:
    p = fields["p"]
    if style.latex:
        pc = rng.choice((f"{p}\\%", f"${p}\\%$", f"\\({p}\\%\\)"))
    else:
        pc = rng.choice((f"{p}%", f"{p}%", f"{p} %"))
    return {**fields, "pc": pc}


def _percent_change(fields: dict[str, str], style: Style, rng: random.Random) -> dict[str, str]:
    increase = fields["change"] == "increased"
    return {
        **_percent(fields, style, rng),
        "direction": "up" if increase else "down",
        "noun": rng.choice(("increase", "rise")) if increase else rng.choice(("decrease", "cut")),
        "verb": "raises" if increase else "lowers",
        "item": rng.choice(("coat", "bike", "phone", "game", "lamp")),
    }


def _given(fields: dict[str, str], style: Style, rng: random.Random) -> dict[str, str]:
    pairs = [p.strip() for p in fields["given"].split(",")]
    spaced = [p.replace("=", " = ") for p in pairs]
    given = rng.choice(
        (
            f"({', '.join(pairs)})",
            f"Use {', '.join(spaced)}.",
            f"[{', '.join(pairs)}]",
            f"(atomic masses: {', '.join(pairs)})",
            f"Given {', '.join(spaced)}.",
        )
    )
    return {**_units(g="g", gmol="g/mol")(fields, style, rng), "given": given}


_MOVER_UNITS = _units(m="m", s="s", ms="m/s", mss="m/s^2")
_FORCE_UNITS = _units(kg="kg", mss="m/s^2", N="N")
_DENSITY_UNITS = _units(g="g", kg="kg", cm3="cm^3", gcm3="g/cm^3")


def _convert(fields: dict[str, str], style: Style, rng: random.Random) -> dict[str, str]:
    return {
        "k": fields["k"],
        "u1": render_unit(fields["u1"], style, rng),
        "u2": render_unit(fields["u2"], style, rng),
    }


def _suvat(fields: dict[str, str], style: Style, rng: random.Random) -> dict[str, str]:
    out = _MOVER_UNITS(fields, style, rng)
    if fields["start"] != "from rest":
        speed = fields["start"].removeprefix("at ").removesuffix(" m/s")
        out["start"] = f"at {speed} {out['ms']}"
    return out


def _form(pattern: str, templates: tuple[str, ...], render: Callable) -> Form:
    return Form(re.compile(pattern), templates, render)


FORMS: dict[str, tuple[Form, ...]] = {
    "addition": (
        _form(
            rf"^Compute (?P<expr>(?P<a>{_N}) \+ (?P<b>{_N}))\.$", TEMPLATES["addition"], _expression
        ),
    ),
    "subtraction": (
        _form(
            rf"^Compute (?P<expr>(?P<a>{_N}) - (?P<b>{_N}))\.$",
            TEMPLATES["subtraction"],
            _expression,
        ),
    ),
    "multiplication": (
        _form(
            rf"^Compute (?P<expr>(?P<a>{_N}) \* (?P<b>{_N}))\.$",
            TEMPLATES["multiplication"],
            _expression,
        ),
    ),
    "order_of_operations": (
        _form(r"^Compute (?P<expr>[-\d ()+*/]+)\.$", TEMPLATES["order_of_operations"], _expression),
    ),
    "fractions": (
        _form(r"^Compute (?P<expr>\d+/\d+ [-+*] \d+/\d+)\.$", TEMPLATES["fractions"], _expression),
    ),
    "percentages": (
        _form(rf"^What is (?P<p>{_N})% of (?P<n>{_N})\?$", _PERCENT_OF, _percent),
        _form(
            rf"^A price of (?P<n>{_N}) is (?P<change>increased|decreased) by (?P<p>{_N})%\. "
            r"What is the new price\?$",
            _PERCENT_CHANGE,
            _percent_change,
        ),
    ),
    "linear_equations": (_form(r"^Solve for x: (?P<eq>.+)\.$", _LINEAR, _linear),),
    "word_problems": (
        _form(
            rf"^(?P<name>\w+) has (?P<a>{_N}) (?P<item>\w+) and gets (?P<b>{_N}) more\. "
            r"How many \w+ now\?$",
            _WORD_GETS,
            lambda f, s, r: f,
        ),
        _form(
            rf"^(?P<name>\w+) has (?P<a>{_N}) (?P<item>\w+) and gives away (?P<b>{_N})\. "
            r"How many \w+ are left\?$",
            _WORD_GIVES,
            lambda f, s, r: f,
        ),
        _form(
            rf"^A box holds (?P<a>{_N}) (?P<item>\w+)\. How many \w+ are in (?P<k>{_N}) boxes\?$",
            _WORD_BOXES,
            lambda f, s, r: {**f, "name": r.choice(("Sam", "Alex", "Priya", "Lena"))},
        ),
        _form(
            rf"^(?P<name>\w+) buys (?P<k>{_N}) packs of (?P<a>{_N}) (?P<item>\w+) and gives "
            rf"away (?P<b>{_N})\. How many \w+ are left\?$",
            _WORD_PACKS,
            lambda f, s, r: f,
        ),
    ),
    "unit_conversion": (
        _form(rf"^Convert (?P<k>{_N}) (?P<u1>\S+) to (?P<u2>\S+)\.$", _CONVERT, _convert),
    ),
    "kinematics": (
        _form(
            rf"^A (?P<mover>\w+) travels (?P<d>{_N}) m in (?P<t>{_N}) s\. "
            r"What is its speed in m/s\?$",
            _SPEED,
            _MOVER_UNITS,
        ),
        _form(
            rf"^A (?P<mover>\w+) moves at (?P<v>{_N}) m/s for (?P<t>{_N}) s\. "
            r"How far does it go in m\?$",
            _DISTANCE,
            _MOVER_UNITS,
        ),
        _form(
            rf"^A (?P<mover>\w+) speeds up from (?P<u>{_N}) m/s to (?P<v>{_N}) m/s in "
            rf"(?P<t>{_N}) s\. What is its acceleration in m/s\^2\?$",
            _ACCELERATION,
            _MOVER_UNITS,
        ),
        _form(
            rf"^A (?P<mover>\w+) starts (?P<start>from rest|at {_N} m/s) and accelerates at "
            rf"(?P<a>{_N}) m/s\^2 for (?P<t>{_N}) s\. How far does it go in m\?$",
            _SUVAT,
            _suvat,
        ),
    ),
    "force": (
        _form(
            rf"^A (?P<m>{_N}) kg box accelerates at (?P<a>{_N}) m/s\^2\. "
            r"What is the net force in N\?$",
            _FORCE_FMA,
            _FORCE_UNITS,
        ),
        _form(
            rf"^A net force of (?P<f>{_N}) N acts on a (?P<m>{_N}) kg mass\. "
            r"What is its acceleration in m/s\^2\?$",
            _FORCE_AFM,
            _FORCE_UNITS,
        ),
        _form(
            rf"^What is the weight in N of a (?P<m>{_N}) kg mass\? Use g = 9\.8 m/s\^2\.$",
            _WEIGHT,
            _FORCE_UNITS,
        ),
        _form(
            rf"^A (?P<m>{_N}) kg box is pushed with (?P<push>{_N}) N against "
            rf"(?P<friction>{_N}) N of friction\. What is its acceleration in m/s\^2\?$",
            _FRICTION,
            _FORCE_UNITS,
        ),
    ),
    "density": (
        _form(
            rf"^A block has mass (?P<m>{_N}) g and volume (?P<vol>{_N}) cm\^3\. "
            r"What is its density in g/cm\^3\?$",
            _DENSITY_RHO,
            _DENSITY_UNITS,
        ),
        _form(
            rf"^A liquid has density (?P<rho>{_N}) g/cm\^3\. What is the mass in g of "
            rf"(?P<vol>{_N}) cm\^3\?$",
            _DENSITY_MASS,
            _DENSITY_UNITS,
        ),
        _form(
            rf"^A metal has density (?P<rho>{_N}) g/cm\^3\. What volume in cm\^3 has mass "
            rf"(?P<m>{_N}) g\?$",
            _DENSITY_VOLUME,
            _DENSITY_UNITS,
        ),
        _form(
            rf"^A stone has mass (?P<kgm>{_N}) kg and volume (?P<vol>{_N}) cm\^3\. "
            r"What is its density in g/cm\^3\?$",
            _DENSITY_KG,
            _DENSITY_UNITS,
        ),
    ),
    "molar_mass": (
        _form(
            r"^Find the molar mass of (?P<formula>\w+) in g/mol\. \((?P<given>[^)]+)\)$",
            _MOLAR,
            _given,
        ),
        _form(
            rf"^What is the mass in g of (?P<k>{_N}) mol of (?P<formula>\w+)\? "
            r"\((?P<given>[^)]+)\)$",
            _MOLAR_MASS_OF_MOL,
            _given,
        ),
        _form(
            rf"^How many mol are in (?P<grams>{_N}) g of (?P<formula>\w+)\? "
            r"\((?P<given>[^)]+)\)$",
            _MOLAR_MOLES,
            _given,
        ),
    ),
}
FORMS["multiple_choice"] = (
    FORMS["unit_conversion"] + FORMS["kinematics"] + FORMS["force"] + FORMS["density"]
)


def match_form(topic: str, statement: str) -> tuple[Form, dict[str, str]]:
    """The form a generated statement follows and its fields; ValueError when none matches
    (a generator changed its wording: the templates must follow)."""
    for form in FORMS[topic]:
        found = form.pattern.match(statement)
        if found:
            return form, {k: v for k, v in found.groupdict().items() if v is not None}
    raise ValueError(f"no phrasing form of {topic!r} matches {statement!r}")


# --- surface noise ------------------------------------------------------------------------

_TYPO_WORD_RE = re.compile(r"\b[a-z]{5,}\b")
# Words whose misspelling would change the problem (units, the unknown, chemistry).
_NO_TYPO = {"metres", "meters", "seconds", "grams", "newtons", "moles", "hours", "minutes"}


def _typo(text: str, rng: random.Random) -> str:
    words = [m for m in _TYPO_WORD_RE.finditer(text) if m.group() not in _NO_TYPO]
    if not words:
        return text
    word = rng.choice(words)
    w = word.group()
    i = rng.randrange(1, len(w) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        new = w[:i] + w[i + 1] + w[i] + w[i + 2 :]  # swap two letters
    elif kind == 1:
        new = w[:i] + w[i + 1 :]  # drop a letter
    else:
        new = w[:i] + w[i] + w[i:]  # double a letter
    return text[: word.start()] + new + text[word.end() :]


def add_noise(text: str, rng: random.Random, *, lower_ok: bool) -> str:
    """Lower case, missing or doubled punctuation, stray spaces and the odd typo."""
    if lower_ok and rng.random() < 0.3:
        text = text.lower()
    roll = rng.random()
    if roll < 0.25:
        text = text.rstrip(".?!")
    elif roll < 0.35 and text.endswith("?"):
        text += rng.choice(("?", "??", " ?"))
    elif roll < 0.4:
        text += rng.choice((" thanks", " pls", " thank you!"))
    if rng.random() < 0.1:
        text = rng.choice(("hi, ", "Hello! ", "pls ", "hey ")) + text
    if rng.random() < 0.15:
        text = _typo(text, rng)
    if rng.random() < 0.1:
        text = text.replace(" ", "  ", 1)
    if rng.random() < 0.1:
        text = " " + text + " "
    return text


# --- rephrasing ---------------------------------------------------------------------------

# Statements with a chemical formula or option letters keep their case: "co" is not "CO".
_CASE_SENSITIVE_TOPICS = {"molar_mass", "multiple_choice"}


def rephrase(problem: Problem, rng: random.Random, *, split: Split = "train") -> Problem:
    """The same problem (answer, solution, split key) worded through one of its topic's
    templates on the given side of the wording split, with surface noise."""
    stem, _, options = problem.statement.partition("\n")
    form, fields = match_form(problem.topic, stem)
    style = draw_style(rng)
    template = rng.choice(templates_for(form.templates, split))
    values = form.render(fields, style, rng)
    text = template.format(**values)
    text = text[0].upper() + text[1:] if text[:1].islower() and rng.random() < 0.5 else text
    text = add_noise(text, rng, lower_ok=problem.topic not in _CASE_SENSITIVE_TOPICS)
    if options:
        text = f"{text.strip()}\n{options}"
    return dataclasses.replace(
        problem, statement=text, split_text=problem.split_text or problem.statement
    )


def phrased_training_problems(
    seed: int, *, natural_share: float, **stream_options: object
) -> Iterator[Problem]:
    """The training stream with `natural_share` of its problems reworded by `train` templates
    (the rest keep the generators' wording, so that wording is not forgotten)."""
    rng = random.Random(f"phrasing:{seed}")
    for problem in training_problems(seed, **stream_options):  # type: ignore[arg-type]
        if rng.random() < natural_share:
            yield rephrase(problem, rng, split="train")
        else:
            yield problem


def unseen_phrasing_set(
    domain: Domain,
    level: int,
    n: int,
    seed: int = 0,
    topic_names: Sequence[str] | None = None,
) -> list[Problem]:
    """The held-out `eval_set` problems, each reworded by an `unseen` template: the same
    problems as the generator-worded set, so the two accuracies are paired."""
    problems = eval_set(domain, level, n, seed, topic_names)
    rng = random.Random(f"unseen:{domain}:{level}:{seed}")
    return [rephrase(p, rng, split="unseen") for p in problems]


def template_counts() -> Mapping[str, dict[str, int]]:
    """Templates per topic on each side of the split (forms of one topic summed)."""
    counts: dict[str, dict[str, int]] = {}
    for topic, forms in FORMS.items():
        seen: set[str] = set()
        tally = {"train": 0, "unseen": 0}
        for form in forms:
            for template in form.templates:
                if template not in seen:
                    seen.add(template)
                    tally[split_of(form.templates, template)] += 1
        counts[topic] = tally
    return counts
