"""Cross-cutting pieces of the site: the error type, role checks, health, events and the home page."""
