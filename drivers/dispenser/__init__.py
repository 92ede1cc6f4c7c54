"""Cash-dispenser backends: `xfs4iot` (an XFS4IoT CashDispenser service over WebSocket).

May import: drivers.base, drivers.errors, edge.errors.
"""
