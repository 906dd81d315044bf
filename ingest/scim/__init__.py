"""SCIM 2.0 service provider per org, on scim2-server's protocol layer and a PostgreSQL storage."""
