"""The web console for tellers, auditors and administrators, served by the daemon at /console.

    mount_console(app, ConsoleDesk.for_runtime(runtime))     # edge.service.app does this

- routes      the pages (one router; errors become pages, sign-in and CSRF as dependencies)
- desk        the service object behind them: sign-in, preview, capture jobs, auditor and admin views; the
              daemon's services do the work and audit under the operator's Caller
- sessions    HttpOnly SameSite=Strict cookie sessions, idle timeout, CSRF tokens
- preview     the live camera preview with face boxes and quality findings (frames only in memory)
- jobs        captures that take seconds, with progress
- i18n        en / ru / kk catalogues (locales/), the terminal's customer prompts included
- charts      DET curves and operating points from the committed calibration
Static files are the console's own (static/) and htmx, vendored from npm at set-up into static/vendor/
with its licence (`make console-assets`); nothing comes from a CDN.

Another FastAPI app (the fleet registry) mounts the same router with its own desk: `mount_console(app, desk)`.

May import: as edge.service (it is part of it): edge.service's modules, edge.config and everything below.
"""
from edge.service.console.desk import ConsoleDesk
from edge.service.console.routes import mount_console

__all__ = ["ConsoleDesk", "mount_console"]
