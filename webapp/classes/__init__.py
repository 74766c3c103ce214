"""Classes: a teacher's classroom, its students (joined by code) and the problem sets assigned to it."""
