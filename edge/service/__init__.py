"""The edge daemon: sessions, enrolment, HTTP API (FastAPI), roles."""
