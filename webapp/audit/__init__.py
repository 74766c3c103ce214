"""Audit: a record of the security-relevant actions on the site (failed and locked-out logins,
teacher approvals, set publication and training approvals, promotions, rollbacks, training jobs),
written by the services that perform them and read by admins on the dashboard."""
