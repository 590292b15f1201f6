"""A deliberately broken plug-in: ``register()`` raises, to test how ``load_plugins`` reports it."""


def register() -> None:
    """Fail the way a plug-in with a bug does."""
    raise RuntimeError("example failure inside register()")
