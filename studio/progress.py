"""How long work reports on itself and learns it should stop: every stage takes both, the same way.

`progress(message, fraction)` says what is happening and how far along it is (0.0 to 1.0); `cancelled()`
answers whether the user asked to stop, and the work then raises studio.errors.Cancelled with a sentence that
says what was kept. The CLI passes a terminal bar (studio.console.Bar), the window a ui.tasks.Task.
"""
from __future__ import annotations

from typing import Callable

Progress = Callable[[str, float], None]
Cancel = Callable[[], bool]
