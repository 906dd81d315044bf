"""The reference: scim2-server's in-memory storage behind its own ASGI application."""

from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import AsyncInMemoryStorage
from scim2_server.utils import load_default_provider

app = ASGIApplication(AsyncInMemoryStorage(), load_default_provider())
