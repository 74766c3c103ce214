"""Tutoring: a student's attempts at problems, the generations streamed for them, hints, own answers
and feedback."""
