"""PyTorch: the linear layer as one fused call, and dropout from cheaper random bits.

`keras.ops.matmul(x, kernel) + bias` is two eager calls on PyTorch (a matrix product, then a second pass
over its output for the bias), where torch's own `nn.Linear` and the official VidTr code make one
`addmm` that writes the bias into the product's output buffer. Every projection of a VidTr block (qkv,
attention output, both MLP layers) and the patch embedding is such a product, so on PyTorch they go
through `torch.nn.functional.linear`: the same weights and the same result (the product is accumulated
the same way and the bias added once), one output pass fewer. TensorFlow and JAX compile the add into
the product themselves and keep the plain expression. Measured against the official code:
results/official.md (`python -m benchmarks official`).

Dropout: Keras' unseeded dropout on PyTorch is `torch.nn.functional.dropout`, whose mask comes from
`bernoulli_`, by far its slowest part on the CPU (a Bernoulli draw per element); the attention dropout of
joint attention draws one per entry of every head's token x token map. `dropout` draws the same kind of
mask from raw 31-bit integers instead (`random_`, then one comparison): each element is kept with
probability round(keep * 2^31) / 2^31, the keep probability to float64 precision, from the same global
torch generator (`torch.manual_seed` / `keras.utils.set_random_seed` make it repeatable, and
`torch.utils.checkpoint` replays it in remat as it replays Bernoulli draws). The masks differ from
`nn.functional.dropout`'s, not their distribution; autograd keeps a boolean mask, as it does there.
"""

import keras


def linear(x, kernel, bias):
    """`x @ kernel + bias` (kernel (in, out), Keras' layout) as one `torch.nn.functional.linear`.

    Only called on the torch backend; `kernel` and `bias` may be Keras variables (their values, cast to
    the layer's compute dtype under mixed precision, are used), tensors or arrays.
    """
    import torch  # only reached on the torch backend

    x = keras.ops.convert_to_tensor(x)
    kernel = keras.ops.convert_to_tensor(kernel)
    bias = keras.ops.convert_to_tensor(bias)
    # nn.functional.linear takes the (out, in) weight of nn.Linear: the transposed view of Keras' kernel,
    # which torch passes to addmm as the transposed operand without a copy.
    return torch.nn.functional.linear(x, kernel.T, bias)


def dropout(x, rate):
    """Inverted dropout of `x` (training): each element kept with probability 1 - rate and scaled by
    1 / (1 - rate), the rest zero. Only called on the torch backend, for unseeded dropout layers (a
    seeded `keras.layers.Dropout` keeps Keras' own seeded path)."""
    import torch  # only reached on the torch backend

    x = keras.ops.convert_to_tensor(x)
    keep_prob = 1.0 - float(rate)
    bits = torch.empty(x.shape, dtype=torch.int32, device=x.device).random_()  # uniform on [0, 2^31)
    keep = bits < round(keep_prob * 2.0**31)
    return torch.where(keep, x * (1.0 / keep_prob), 0.0)
