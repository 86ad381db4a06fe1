"""Imports a part of PyPTO's distributed runtime that pldsl does not provide."""

import pypto.language as pl  # noqa: F401
import pypto.language.distributed as pld  # noqa: F401
import pypto.runtime.DistributedWorker  # noqa: F401
