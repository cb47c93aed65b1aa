"""FLOPs, memory and speed of VidTr models: analytic models and their measurement.

- `flops(model_or_preset, convention="full"|"paper")`: multiply-adds of one clip, per layer and
  component (`FlopReport`); `.gflops` is G multiply-adds, the paper's "GFLOPs"; `.flops` is
  2 x multiply-adds, the unit of XLA's and torch's counters.
- `memory(model_or_preset, batch_size=1)`: activations kept for the backward pass per layer and
  component, plus parameters, gradients and optimizer slots (`MemoryReport`).
- `count_parameters(...)`: parameters from the configuration, without building the model.
- `crosscheck.backend_flops(model)`, `crosscheck.count_flops(preset)`: the backend's own count
  (XLA cost analysis, torch FlopCounterMode, or the traced TF graph).
- `measure`: training-step peak memory, XLA memory analysis, torch saved tensors, inference latency,
  and `run_worker` to measure on another backend in a fresh process.

Only numpy and keras are imported here; backend libraries are imported inside the functions that
talk to them.
"""

from vidtr_keras.complexity.flops import CONVENTIONS, FlopReport, FlopRow, flops
from vidtr_keras.complexity.memory import (
    FitReport,
    MemoryReport,
    MemoryRow,
    attention_map_elements,
    count_parameters,
    fits_in_memory,
    memory,
)
from vidtr_keras.complexity.spec import LayerShape, ModelSpec, model_spec

__all__ = [
    "CONVENTIONS",
    "FlopReport",
    "FitReport",
    "FlopRow",
    "LayerShape",
    "MemoryReport",
    "MemoryRow",
    "ModelSpec",
    "attention_map_elements",
    "count_parameters",
    "fits_in_memory",
    "flops",
    "memory",
    "model_spec",
]
