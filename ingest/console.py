"""The admin console (being written)."""


def console_routes(settings, engine):
    return []
