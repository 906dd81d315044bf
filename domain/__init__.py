"""The domain: orgs, members, accounts, sign-ins and billing facts, their rules and the unit of work."""
