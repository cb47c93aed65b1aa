"""Table 4b: training memory per clip of spatial-only, joint and separable attention (VidTr-S backbone,
8 frames at 224 px, batch 1), measured on each backend, against the paper's GB and its 3.3x claim."""

from reproduce import common, paper

VARIANTS = [
    ("Spatial only", "spatial"),
    ("Jointly", "joint"),
    ("Temp.-spat.", "temporal_spatial"),
    ("Spat.-temp.", "spatial_temporal"),
]
GIB = 2.0**30


def run(ctx):
    from vidtr_keras.complexity import memory

    measured = {}
    for backend in common.BACKENDS:
        for label, attention in VARIANTS:
            task = {
                "kind": "train_memory",
                "batch_size": 1,
                "models": [{"preset": "vidtr_s", "overrides": {"attention": attention}, "label": attention}],
            }
            (item,) = common.worker(ctx, task, backend, f"table4b {label}", timeout=900)
            measured[(backend, attention)] = item
    task = {
        "kind": "saved_tensors",
        "batch_size": 1,
        "models": [{"preset": "vidtr_s", "overrides": {"attention": a}, "label": a} for _, a in VARIANTS],
    }
    saved = {item["label"]: item for item in common.worker(ctx, task, "torch", "table4b saved tensors")}

    def gib(value):
        return None if value is None else value / GIB

    rows, series = [], {}
    for label, attention in VARIANTS:
        model = memory("vidtr_s", attention=attention, optimizer_slots=1)
        values = {
            "analytic activations": model.activation_bytes,
            "analytic training total": model.total_bytes,
            "torch saved tensors": saved[attention].get("saved_bytes"),
            "XLA temp (jax)": measured[("jax", attention)].get("xla_temp_bytes"),
        }
        for backend in common.BACKENDS:
            values[f"step peak RSS ({backend})"] = measured[(backend, attention)].get("step_bytes")
        for key, value in values.items():
            series.setdefault(key, {})[attention] = value
        rows.append(
            [label, attention, paper.TABLE4B[attention]]
            + [gib(v) for v in values.values()]
            + [sum(model.attention_map_elements)]
        )
    columns = (
        ["temporal modelling", "attention", "paper GB"] + [f"{k} GiB" for k in series] + ["attention-map elements"]
    )
    ratio_rows = []
    for key, values in series.items():
        sep = values.get("temporal_spatial")
        joint = values.get("joint")
        ratio = None if not sep or joint is None else joint / sep
        ratio_rows.append([key, ratio, paper.TABLE4B_RATIO, common.gap(ratio, paper.TABLE4B_RATIO)])
    analytic = {a: memory("vidtr_s", attention=a, optimizer_slots=1) for _, a in VARIANTS}
    totals = {a: m.total_bytes / GIB for a, m in analytic.items()}
    totals_gb = {a: m.total_bytes / 1e9 for a, m in analytic.items()}
    joint_maps = analytic["joint"].attention_map_elements[0]
    sep_maps = analytic["temporal_spatial"].attention_map_elements[0]
    sep_act = analytic["temporal_spatial"].activation_bytes / GIB
    tokens_gib = sep_act - analytic["temporal_spatial"].by_component()["attention_maps"] / GIB
    measured_ratios = [r[1] for r in ratio_rows if r[1] is not None and r[0] != "analytic training total"]
    low, high = min(measured_ratios), max(measured_ratios)
    map_model = (
        memory("vidtr_s", attention="joint").attention_map_elements[0] / memory("vidtr_s").attention_map_elements[0]
    )
    ratio_rows.append(
        [
            "attention maps alone (one layer)",
            map_model,
            paper.TABLE4B_RATIO,
            common.gap(map_model, paper.TABLE4B_RATIO),
        ]
    )
    baselines = ", ".join(
        f"{b} {gib(measured[(b, 'temporal_spatial')].get('baseline_bytes')):.2f} GiB"
        for b in common.BACKENDS
        if measured[(b, "temporal_spatial")].get("baseline_bytes")
    )
    ratio_table = "## joint / separable (temporal-spatial)\n\n" + common.markdown_table(
        ["measure", "ours", "paper", "gap"], ratio_rows
    )
    notes = [
        "Training step = forward in training mode (dropout on), cross-entropy, backward, plain SGD update, batch 1. "
        "Measures: *analytic activations*: `vidtr_keras.complexity.memory`, what reverse-mode autodiff keeps without "
        "recomputation; *analytic training total*: plus parameters, gradients and one SGD-momentum slot (the paper's "
        "optimizer); *torch saved tensors*: the bytes autograd saves for the backward pass (saved-tensor hooks, meta "
        "device); *XLA temp*: XLA's buffer assignment of the compiled JAX step (activations, gradients and backward "
        "temporaries); *step peak RSS*: the rise of the peak resident memory of a fresh process during one step over "
        "its resident memory just before (heap trimmed, peak counter reset), i.e. activations + gradients + "
        f"temporaries, without the resident parameters and libraries (resident before the step: {baselines}).",
        "Order: spatial-only < separable < joint holds for every measure. Temporal-spatial and spatial-temporal "
        "keep the same tensors (the same maps in the other order): the analytic model and the saved-tensor count "
        "give them the same bytes, measured peaks differ by the order in which temporaries live.",
        f"Why joint/separable is {low:.1f}-{high:.1f}x here and not the paper's 3.3x: the attention maps alone are "
        f"{map_model:.1f}x larger for joint attention (h(TS+1)^2 = {joint_maps / 1e6:.1f} M against "
        f"h[(S+1)(T+1)^2 + (T+1)(S+1)^2] = {sep_maps / 1e6:.1f} M elements per layer), but a training step also "
        f"keeps the token activations (LayerNorm inputs and outputs, q/k/v, the 3072-wide MLP hidden layer: "
        f"{tokens_gib:.1f} GiB of the separable model's {sep_act:.1f} GiB) and needs gradients, which both models "
        "share; the whole-step ratio then depends on how many copies of each map a framework keeps (softmax output, "
        "dropout mask and dropped copy, layout copies for batched matmuls; XLA fuses some away).",
        f"Against the paper's absolute numbers: our analytic training totals (with one SGD-momentum slot) are "
        f"{totals['spatial']:.1f} / {totals['temporal_spatial']:.1f} / {totals['joint']:.1f} GiB "
        f"({totals_gb['spatial']:.1f} / {totals_gb['temporal_spatial']:.1f} / {totals_gb['joint']:.1f} GB) for "
        "spatial-only / separable / joint against 2.1 / 2.3 / 7.6 GB (gaps "
        f"{common.gap(totals_gb['spatial'], 2.1)}, {common.gap(totals_gb['temporal_spatial'], 2.3)}, "
        f"{common.gap(totals_gb['joint'], 7.6)}): ours are above the paper for the two light models and far below "
        "for the joint one. The paper does not say how it measured (batch size, precision, what is "
        "counted: parameters, optimizer state, the CUDA context, the caching allocator's reserve). Anything that "
        "weighs more on the joint model's large map buffers (118 MB per copy and layer) would raise its figure, "
        "e.g. softmax kept in float32 under mixed precision plus a float16 copy for the matmul, or allocator "
        "fragmentation; we report the gap instead of guessing which.",
    ]
    return common.write(
        "table4b",
        "Table 4b: training memory per clip by temporal modelling",
        columns,
        rows,
        notes,
        backends=common.BACKENDS,
        extra_markdown=[ratio_table],
    )
