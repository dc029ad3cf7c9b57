"""The reference router's public surface is exactly its ``__all__``."""

from __future__ import annotations

import examples.reference_router as router


def test_public_names_are_exactly_all():
    public = {name for name in dir(router) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(router, name)).__name__ == "module"}
    assert public - modules == set(router.__all__)
