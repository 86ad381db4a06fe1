"""The op table: one entry per builtin op (name, parameters, type rule, doc)."""

from pldsl.ops import table as _table  # noqa: F401  (registers every op)
from pldsl.ops import table_distributed as _table_distributed  # noqa: F401
from pldsl.ops import table_l1 as _table_l1  # noqa: F401
from pldsl.ops import table_more as _table_more  # noqa: F401
from pldsl.ops import table_scatter as _table_scatter  # noqa: F401
from pldsl.ops import table_sort as _table_sort  # noqa: F401
from pldsl.ops import tile as _tile  # noqa: F401  (the tile level's own ops)
from pldsl.ops.registry import OPS, OpDef, OpParam, TypeRuleError, lookup

__all__ = ["OPS", "OpDef", "OpParam", "TypeRuleError", "lookup"]
