"""The admin API (being written)."""

from starlette.applications import Starlette


def admin_api(settings, engine):
    return Starlette()
