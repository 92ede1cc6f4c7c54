"""The edge daemon: sessions, enrolment, HTTP API (FastAPI routers in `routes`), roles, the XFS4IoT bridge.

Public entry points: `edge.service.server.run_daemon`, `DaemonThread`, `edge.service.app.create_app`.
May import: edge.config, xfs4iot_bridge and everything below them. Never edge.cli or the simulator (the
simulator wraps the daemon: simulator.terminal).
"""
