"""Lets Accelerate shard with FSDP2 between CPU processes, for tests/test_distributed.py only.

Accelerate turns FSDP on only for GPU-like devices: between CPU processes (gloo) it quietly trains with DDP
instead. torch's `fully_shard` itself runs on CPU processes over gloo, so a test that puts this folder on
PYTHONPATH (Python imports `sitecustomize` at start-up) lifts that one device check; everything else, from the
studio's launcher to Accelerate's FSDP2 preparation, checkpointing and state-dict gathering, is the real path.
"""
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType

_original_init = AcceleratorState.__init__


def _init_with_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):
    _original_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin


AcceleratorState.__init__ = _init_with_fsdp_on_cpu
