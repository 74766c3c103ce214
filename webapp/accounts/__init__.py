"""Accounts: the user model with its role (student, teacher, admin), sign-up, log-in and log-out."""
