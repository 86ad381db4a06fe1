"""Imports PyPTO's distributed surface, which pldsl does not provide."""

import pypto.language as pl  # noqa: F401
import pypto.language.distributed as pld  # noqa: F401
