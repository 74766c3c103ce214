"""The demo problem set and the demo users that `manage.py seed_demo` creates on a fresh site."""

from typing import Any

DEMO_USERS = [
    # (username, password, role): printed by `make run` so a person can log in at once.
    ("student", "ring-student-demo", "student"),
    ("teacher", "ring-teacher-demo", "teacher"),
    ("admin", "ring-admin-demo", "admin"),
]

DEMO_CLASS_NAME = "Demo class"
DEMO_CLASS_JOIN_CODE = "DEMO1234"
DEMO_SET_TITLE = "Warm-up: arithmetic and physics"

# Each item is a Problem's fields (statement, domain, answer, …), given to the model as keywords.
DEMO_PROBLEMS: list[dict[str, Any]] = [
    {
        "statement": "Compute 47 + 38.",
        "domain": "math",
        "answer_kind": "number",
        "reference_answer": "85",
        "difficulty": 1,
    },
    {
        "statement": "Compute 305 - 178.",
        "domain": "math",
        "answer_kind": "number",
        "reference_answer": "127",
        "difficulty": 2,
    },
    {
        "statement": "Compute 64 * 7.",
        "domain": "math",
        "answer_kind": "number",
        "reference_answer": "448",
        "difficulty": 2,
    },
    {
        "statement": "Solve for x: 3x + 5 = 20.",
        "domain": "math",
        "answer_kind": "expression",
        "reference_answer": "5",
        "difficulty": 2,
    },
    {
        "statement": "What is 25% of 80?",
        "domain": "math",
        "answer_kind": "number",
        "reference_answer": "20",
        "difficulty": 2,
    },
    {
        "statement": "Compute 1/2 + 1/3.",
        "domain": "math",
        "answer_kind": "expression",
        "reference_answer": "5/6",
        "difficulty": 3,
    },
    {
        "statement": "A 4 kg cart accelerates at 3 m/s^2. What net force acts on it, in N?",
        "domain": "science",
        "answer_kind": "number",
        "reference_answer": "12",
        "unit": "N",
        "tolerance": 0.01,
        "difficulty": 2,
    },
    {
        "statement": "Convert 2.5 km to m.",
        "domain": "science",
        "answer_kind": "number",
        "reference_answer": "2500",
        "unit": "m",
        "tolerance": 0.01,
        "difficulty": 1,
    },
]
