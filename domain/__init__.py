"""The domain: statuses and rules, the unit of work and its repositories, and the org-level commands."""
