"""Template filters of the admin dashboard."""
