"""The hardware simulator: virtual devices speaking the real wire protocols, and scenarios.

May import: everything of the product (edge, drivers, xfs4iot_bridge): it stands above it and drives it
through its real transports and public entry points. The product never imports it (entry points: pyproject.toml).
"""
