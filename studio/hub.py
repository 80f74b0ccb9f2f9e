"""Names on the Hugging Face Hub ("owner/name"), told apart from paths on this computer."""
from __future__ import annotations

import re

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # starts with neither ".", "/" nor "~": never a path


def is_hub_id(text: str) -> bool:
    """Whether `text` reads as a Hub id such as "HuggingFaceTB/SmolLM2-360M-Instruct": an owner and a name,
    one slash, no path prefix. The Hub is not asked; where a folder of that name exists on this computer, the
    caller prefers the folder."""
    return bool(_HUB_ID.match(text.strip()))
