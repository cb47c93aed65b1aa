"""PyTorch: the linear layer as one fused call.

`keras.ops.matmul(x, kernel) + bias` is two eager calls on PyTorch (a matrix product, then a second pass
over its output for the bias), where torch's own `nn.Linear` and the official VidTr code make one
`addmm` that writes the bias into the product's output buffer. Every projection of a VidTr block (qkv,
attention output, both MLP layers) and the patch embedding is such a product, so on PyTorch they go
through `torch.nn.functional.linear`: the same weights and the same result (the product is accumulated
the same way and the bias added once), one output pass fewer. TensorFlow and JAX compile the add into
the product themselves and keep the plain expression. Measured against the official code:
results/official.md (`python -m benchmarks official`).
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
