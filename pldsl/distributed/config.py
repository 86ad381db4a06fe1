"""PyPTO's `DistributedConfig` (pypto.ir.distributed_compiled_program): which devices a
distributed program runs on. Here the device ids name simulated ranks: their count is the
rank count; the ids themselves are not used."""

from __future__ import annotations

from typing import Any


class DistributedConfig:
    """`DistributedConfig(device_ids=[0, 1], num_sub_workers=0, ...)`: other fields accepted."""

    def __init__(self, device_ids: Any = None, **fields: Any) -> None:
        self.device_ids = [int(d) for d in (device_ids or [])]
        self.fields = fields

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(name)

    @property
    def world_size(self) -> int | None:
        return len(self.device_ids) or None


def world_size_of(config: Any) -> int | None:
    """The rank count a RunConfig / dict / DistributedConfig names, or None."""
    if config is None:
        return None
    if isinstance(config, DistributedConfig):
        return config.world_size
    if isinstance(config, dict):
        return world_size_of(config.get("distributed_config"))
    fields = getattr(config, "fields", None)
    if isinstance(fields, dict):
        return world_size_of(fields.get("distributed_config"))
    return world_size_of(getattr(config, "distributed_config", None))
