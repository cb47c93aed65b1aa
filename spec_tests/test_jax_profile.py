"""`python -m benchmarks jax_profile`: what it makes of a compiled module's HLO text and of a profiler
trace, on a small module written the way XLA:CPU prints one (no JAX needed)."""

# The HLO below keeps XLA's one line per instruction.
# ruff: noqa: E501

import pytest

jax_profile = pytest.importorskip("benchmarks.jax_profile", reason="benchmarks/ is only in a source checkout")

FWD = "jit(train_step)/jvp(m_backbone)/encoder_block_0"
BWD = "jit(train_step)/transpose(jvp(m_backbone))/encoder_block_0"

HLO = f"""HloModule jit_train_step, entry_computation_layout={{(f32[2,9,64]{{2,1,0}})->f32[]}}

%fused_computation.1 (param_0.1: f32[2,3,9,9], param_1.1: f32[2,3,9,8]) -> f32[2,3,9,8] {{
  %param_0.1 = f32[2,3,9,9]{{3,2,1,0}} parameter(0)
  %param_1.1 = f32[2,3,9,8]{{3,2,1,0}} parameter(1)
  ROOT %dot_general.1 = f32[2,3,9,8]{{3,2,1,0}} dot(%param_0.1, %param_1.1), lhs_batch_dims={{0,1}}, lhs_contracting_dims={{3}}, rhs_batch_dims={{0,1}}, rhs_contracting_dims={{2}}, metadata={{op_name="{BWD}/attention/dot_general" stack_frame_id=1}}
}}

%fused_computation.2 (param_0.2: f32[18,64], param_1.2: f32[64,192]) -> f32[18,192] {{
  %param_0.2 = f32[18,64]{{1,0}} parameter(0)
  %param_1.2 = f32[64,192]{{1,0}} parameter(1)
  ROOT %dot.2 = f32[18,192]{{1,0}} dot(%param_0.2, %param_1.2), lhs_contracting_dims={{1}}, rhs_contracting_dims={{0}}
}}

%fused_computation.3 (param_0.3: f32[144,8], param_1.3: f32[8,8]) -> f32[144,8] {{
  %param_0.3 = f32[144,8]{{1,0}} parameter(0)
  %param_1.3 = f32[8,8]{{1,0}} parameter(1)
  ROOT %dot.3 = f32[144,8]{{1,0}} dot(%param_0.3, %param_1.3), lhs_contracting_dims={{1}}, rhs_contracting_dims={{0}}
}}

%fused_computation.4 (param_0.4: f32[2,9,3,8]) -> f32[2,3,9,8] {{
  %param_0.4 = f32[2,9,3,8]{{3,2,1,0}} parameter(0)
  %transpose.4 = f32[2,3,9,8]{{3,2,1,0}} transpose(%param_0.4), dimensions={{0,2,1,3}}
  ROOT %copy.4 = f32[2,3,9,8]{{3,2,1,0}} copy(%transpose.4)
}}

%fused_computation.5 (param_0.5: f32[2,9,64], param_1.5: f32[2,9]) -> f32[2,9,64] {{
  %param_0.5 = f32[2,9,64]{{2,1,0}} parameter(0)
  %param_1.5 = f32[2,9]{{1,0}} parameter(1)
  %broadcast.5 = f32[2,9,64]{{2,1,0}} broadcast(%param_1.5), dimensions={{0,1}}
  ROOT %multiply.5 = f32[2,9,64]{{2,1,0}} multiply(%param_0.5, %broadcast.5)
}}

%fused_computation.6 (param_0.6: f32[2,3,9,9]) -> f32[2,3,9,9] {{
  %param_0.6 = f32[2,3,9,9]{{3,2,1,0}} parameter(0)
  ROOT %exponential.6 = f32[2,3,9,9]{{3,2,1,0}} exponential(%param_0.6), metadata={{op_name="{FWD}/attention/exp"}}
}}

%fused_computation.7 (param_0.7: f32[2,3,9,9], param_1.7: f32[2,3,9,8]) -> f32[2,3,9,8] {{
  %param_0.7 = f32[2,3,9,9]{{3,2,1,0}} parameter(0)
  %param_1.7 = f32[2,3,9,8]{{3,2,1,0}} parameter(1)
  ROOT %dot.7 = f32[2,3,9,8]{{3,2,1,0}} dot(%param_0.7, %param_1.7), lhs_batch_dims={{0,1}}, lhs_contracting_dims={{3}}, rhs_batch_dims={{0,1}}, rhs_contracting_dims={{2}}
}}

ENTRY %main.7 (p0: f32[2,9,64], p1: f32[64,192]) -> f32[] {{
  %p0 = f32[2,9,64]{{2,1,0}} parameter(0), metadata={{op_name="state[0][0]"}}
  %p1 = f32[64,192]{{1,0}} parameter(1), metadata={{op_name="state[0][1]"}}
  %attn_fusion = f32[2,3,9,8]{{3,2,1,0}} fusion(%p0, %p1), kind=kCustom, calls=%fused_computation.1, metadata={{op_name="{BWD}/attention/dot_general"}}, backend_config={{"fusion_config":{{"kind":"__ynn_fusion"}}}}
  %qkv_fusion = f32[18,192]{{1,0}} fusion(%p0, %p1), kind=kCustom, calls=%fused_computation.2, metadata={{op_name="{FWD}/attention/dot_general"}}
  %fence_fusion = f32[144,8]{{1,0}} fusion(%p0, %p1), kind=kCustom, calls=%fused_computation.3, metadata={{op_name="{BWD}/dot_general"}}
  %copy_bitcast_fusion = f32[2,3,9,8]{{3,2,1,0}} fusion(%p0), kind=kLoop, calls=%fused_computation.4, metadata={{op_name="{FWD}/attention/transpose;{FWD}/attention/transpose"}}
  %norm_fusion = f32[2,9,64]{{2,1,0}} fusion(%p0, %p1), kind=kLoop, calls=%fused_computation.5, metadata={{op_name="{BWD}/norm2/mul"}}
  %softmax_fusion = f32[2,3,9,9]{{3,2,1,0}} fusion(%p0), kind=kLoop, calls=%fused_computation.6
  %sgd_fusion = f32[64,192]{{1,0}} fusion(%p1, %p1), kind=kLoop, calls=%fused_computation.5, metadata={{op_name="jit(train_step)/sgd/sub"}}
  %bare_fusion = f32[2,3,9,8]{{3,2,1,0}} fusion(%copy_bitcast_fusion, %attn_fusion), kind=kCustom, calls=%fused_computation.7
  ROOT %copy.7 = f32[64,192]{{1,0}} copy(%p1)
}}
"""


def _described():
    return jax_profile.describe(jax_profile.parse_hlo(HLO))


def test_each_thunk_gets_the_category_of_what_it_runs():
    d = _described()
    expected = {
        "attn_fusion": jax_profile.ATTENTION_MAPS,
        "qkv_fusion": jax_profile.DENSE,
        "fence_fusion": jax_profile.FENCE,
        "copy_bitcast_fusion": jax_profile.LAYOUT,
        "norm_fusion": jax_profile.NORM,
        "softmax_fusion": jax_profile.SOFTMAX,  # its op_name comes from the fused exponential
        "sgd_fusion": jax_profile.OPTIMIZER,
        "copy.7": jax_profile.LAYOUT,
        "bare_fusion": jax_profile.ATTENTION_MAPS,
    }
    assert {name: jax_profile.categorise(d[name]) for name in expected} == expected


def test_the_backward_pass_is_told_from_the_forward_pass_by_jax_transpose_of_jvp():
    d = _described()
    assert jax_profile.direction(d["attn_fusion"]["op_name"]) == "backward"
    assert jax_profile.direction(d["qkv_fusion"]["op_name"]) == "forward"
    assert jax_profile.direction(d["sgd_fusion"]["op_name"]) == "update"
    assert jax_profile.direction(d["copy.7"]["op_name"]) == "unknown"
    # no source path of its own: its inputs', the backward one (a gradient reads a forward activation too)
    assert jax_profile.direction(d["bare_fusion"]["op_name"]) == "backward"


def test_dot_flops_are_two_per_multiply_add_from_the_hlo_shapes():
    d = _described()
    assert d["attn_fusion"]["flops"] == 2 * (2 * 3 * 9 * 8) * 9  # batched (9x9) @ (9x8) per (batch, head)
    assert d["qkv_fusion"]["flops"] == 2 * 18 * 192 * 64
    assert d["norm_fusion"]["flops"] == 0


def test_a_trace_is_summed_per_instruction_of_the_train_step_only():
    def event(op, dur, module="jit_train_step"):
        return {"ph": "X", "name": op, "dur": dur, "args": {"hlo_module": module, "hlo_op": op}}

    trace = {
        "traceEvents": [
            event("qkv_fusion", 10.0),
            event("qkv_fusion", 30.0),
            event("attn_fusion", 60.0),
            event("attn_fusion", 500.0, module="jit_matmul"),  # another program
            {"ph": "X", "name": "end: qkv_fusion", "dur": 1.0, "args": {}},
            {"ph": "M", "name": "thread_name", "args": {"name": "python"}},
        ]
    }
    times = jax_profile.thunk_times(trace)
    assert times == {"qkv_fusion": 40.0, "attn_fusion": 60.0}
    rows, thunks = jax_profile.breakdown(_described(), times, steps=2)
    by_key = {(r["category"], r["direction"]): r for r in rows}
    assert by_key[(jax_profile.DENSE, "forward")]["seconds"] == pytest.approx(20e-6)
    assert by_key[(jax_profile.ATTENTION_MAPS, "backward")]["gflop"] == pytest.approx(2 * 2 * 3 * 9 * 8 * 9 / 1e9)
    assert [t["name"] for t in thunks] == ["attn_fusion", "qkv_fusion"]  # longest first
