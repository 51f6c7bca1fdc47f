"""The convolutional network of the FedAvg paper, by im2col and hand-written backprop.

McMahan et al. (2017) use this network for MNIST: two 5x5 convolutions with 32 and 64 output
channels, each followed by 2x2 max-pooling, then a 512-unit fully connected ReLU layer and a
softmax output; 1,663,370 parameters with 'same' padding:

    ``A_l = relu(maxpool(conv(A_{l-1}; K_l, b_l)))`` for ``l = 1, 2``  (``A_0 = X``),
    ``H = relu(flatten(A_2) W + c)``,   ``Z = H V + d``,   ``f_i = CE(Z, y)_i``.

Inside the model, activations are NHWC arrays ``(n, H, W, C)``: a convolution is then one matmul
of the im2col columns ``(n*H*W, k*k*C)`` with a ``(k*k*C, O)`` kernel matrix whose result is
already NHWC (measured faster here than NCHW, which needs a transpose after the matmul).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from minifed._checks import check_int, check_rng
from minifed.models.base import Model
from minifed.models.linear import softmax_cross_entropy, softmax_cross_entropy_grad_

# Samples per pass, bounding memory (the default CNN keeps ~1.5 MB per sample for backprop).
# Measured fastest with one BLAS thread on a busy 2-core machine (two workers): 20 for training
# (batch 600: 16 to 25 within noise, 64 1.15x slower: the working set of a pass then leaves the
# cache), 32 for prediction.
CHUNK = 20
FORWARD_CHUNK = 32

# ----- convolution (cross-correlation, as in every deep-learning library) and max-pooling -----


def _im2col(Xpad: np.ndarray, k: int) -> np.ndarray:
    """Columns ``cols[(n, i, j), (u, v, c)] = Xpad[n, i + u, j + v, c]`` of a padded NHWC input.

    ``Xpad`` has shape ``(n, H + k - 1, W + k - 1, C)``; the result is ``(n*H*W, k*k*C)``.
    """
    n, Hp, Wp, C = Xpad.shape
    windows = sliding_window_view(Xpad, (k, k), axis=(1, 2))  # (n, H, W, C, k, k) view
    windows = windows.transpose(0, 1, 2, 4, 5, 3)  # (n, H, W, k, k, C) view
    return windows.reshape(n * (Hp - k + 1) * (Wp - k + 1), k * k * C)  # (n*H*W, k*k*C) copy


def _kernel_matrix(K: np.ndarray) -> np.ndarray:
    """``Km[(u, v, c), o] = K[o, c, u, v]``: the kernel ``(O, C, k, k)`` as a ``(k*k*C, O)``
    matrix matching the im2col columns."""
    O, C, k, _ = K.shape
    return K.transpose(2, 3, 1, 0).reshape(k * k * C, O)  # (k*k*C, O)


def _conv_forward(Xpad: np.ndarray, K: np.ndarray, b: np.ndarray):
    """``Y[n, i, j, o] = b[o] + sum_{c, u, v} K[o, c, u, v] Xpad[n, i + u, j + v, c]``.

    With ``Xpad`` the input ``X`` zero-padded by ``p = (k - 1) / 2`` on each side this is the
    'same' convolution ``Y[n,o,i,j] = b[o] + sum_{c,u,v} K[o,c,u,v] X[n,c,i+u-p,j+v-p]``, computed
    as ONE matmul ``Y = cols Km + b``. Returns ``Y`` ``(n, H, W, O)`` and ``cols`` for backprop.
    """
    n, Hp, Wp, _ = Xpad.shape
    O, _, k, _ = K.shape
    cols = _im2col(Xpad, k)  # (n*H*W, k*k*C)
    Y = cols @ _kernel_matrix(K)  # (n*H*W, O)
    Y += b
    return Y.reshape(n, Hp - k + 1, Wp - k + 1, O), cols  # (n, H, W, O)


def _conv_backward(dY: np.ndarray, cols: np.ndarray, K: np.ndarray, input_grad: bool = True):
    """Gradients of :func:`_conv_forward` from ``dY = dF/dY`` ``(n, H, W, O)``.

    ``dK[o, c, u, v] = sum_{n, i, j} dY[n, i, j, o] Xpad[n, i + u, j + v, c]`` (``cols^T dY``),
    ``db[o] = sum_{n, i, j} dY[n, i, j, o]`` (``1^T dY``), and by col2im, for every offset
    ``(u, v)``, ``dXpad[n, i + u, j + v, c] += sum_o dY[n, i, j, o] K[o, c, u, v]``: one product
    ``dY K[:, :, u, v]`` per offset, added to a shifted window of ``dXpad``.
    Returns ``dK`` ``(O, C, k, k)``, ``db`` ``(O,)`` and ``dXpad`` (``None`` unless
    ``input_grad``: the first layer needs no gradient with respect to the data).

    Why ``k*k`` products and not one, ``dcols = dY Km^T`` ``(n*H*W, k*k*C)`` then ``k*k`` adds
    of its windows ``dcols[:, :, :, u, v]``: such a window is ``C`` contiguous numbers per pixel,
    the window of one product is ``W*C`` per image row, and the small product stays in cache
    while ``dcols`` is ``k*k`` times the size of ``dXpad``. For conv2 of the default CNN with
    one BLAS thread: 2.5 -> 2.3 ms at batch 10, 23 -> 16 ms at batch 64.
    """
    n, H, W, O = dY.shape
    _, C, k, _ = K.shape
    dY = dY.reshape(n * H * W, O)  # (n*H*W, O)
    dK = (cols.T @ dY).reshape(k, k, C, O).transpose(3, 2, 0, 1)  # (O, C, k, k)
    db = np.ones(n * H * W, dtype=dY.dtype) @ dY  # (O,) a product: faster than dY.sum(axis=0)
    if not input_grad:
        return dK, db, None
    Kuv = K.transpose(2, 3, 0, 1).copy()  # (k, k, O, C): Kuv[u, v] = K[:, :, u, v]
    dXpad = np.zeros((n, H + k - 1, (W + k - 1) * C), dtype=dY.dtype)  # (n, H+2p, (W+2p)*C)
    part = np.empty((n * H * W, C), dtype=dY.dtype)  # (n*H*W, C)
    for u in range(k):
        for v in range(k):
            np.matmul(dY, Kuv[u, v], out=part)  # (n*H*W, C) = dY K[:, :, u, v]
            dXpad[:, u : u + H, v * C : (v + W) * C] += part.reshape(n, H, W * C)  # (n, H, W*C)
    return dK, db, dXpad.reshape(n, H + k - 1, W + k - 1, C)  # (n, H+2p, W+2p, C)


def _maxpool_forward(Z: np.ndarray) -> np.ndarray:
    """``M[n, i, j, c] = max_{a, b in {0, 1}} Z[n, 2i + a, 2j + b, c]`` for ``Z`` ``(n, H, W, C)``
    with even ``H`` and ``W``; ``M`` has shape ``(n, H/2, W/2, C)``.

    The maximum of the four strided views ``Z[:, a::2, b::2]`` by three ``np.maximum``: 2 to 3x
    faster than ``.max(axis=(2, 4))`` of the 6-D reshape (0.24 -> 0.07 ms for conv1 at batch 10).
    """
    n, H, W, C = Z.shape
    Z6 = Z.reshape(n, H // 2, 2, W // 2, 2, C)  # (n, H/2, 2, W/2, 2, C) view, Z6[:,:,a,:,b]
    M = np.maximum(Z6[:, :, 0, :, 0], Z6[:, :, 0, :, 1])  # (n, H/2, W/2, C)
    np.maximum(M, Z6[:, :, 1, :, 0], out=M)
    return np.maximum(M, Z6[:, :, 1, :, 1], out=M)


def _maxpool_backward(dM: np.ndarray, Z: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``dZ[n, 2i + a, 2j + b, c] = dM[n, i, j, c]`` if ``(a, b)`` is the argmax of its window,
    else 0.

    Ties go to exactly one element: the first maximum in the order (0, 0), (0, 1), (1, 0), (1, 1)
    (top-left, top-right, bottom-left, bottom-right), as ``np.argmax`` would choose.
    """
    n, H, W, C = Z.shape
    Z6 = Z.reshape(n, H // 2, 2, W // 2, 2, C)  # (n, H/2, 2, W/2, 2, C) view
    dZ6 = np.empty_like(Z6)  # (n, H/2, 2, W/2, 2, C)
    free = np.ones(M.shape, dtype=bool)  # (n, H/2, W/2, C) window not routed yet
    for a in (0, 1):
        for b in (0, 1):
            hit = Z6[:, :, a, :, b] == M  # (n, H/2, W/2, C)
            hit &= free
            free ^= hit
            np.multiply(dM, hit, out=dZ6[:, :, a, :, b])
    return dZ6.reshape(n, H, W, C)  # (n, H, W, C)


# ----- the model -----


class CNN(Model):
    """Convolutional network ``[conv k x k 'same' -> ReLU -> 2x2 max-pool] * L -> FC + ReLU ->
    linear -> softmax cross-entropy``; the defaults are the MNIST CNN of McMahan et al. (2017).

    For ``l = 1..L`` with ``A_0 = X`` reshaped to ``(n, C, H, W)``:
    ``A_l = maxpool(relu(conv(A_{l-1}; K_l, b_l)))``, computed as ``relu(maxpool(.))`` (equal,
    because ReLU is monotone, and four times fewer ReLUs); then ``Hid = relu(a W + c)`` with
    ``a = flatten(A_L)``, logits ``Z = Hid V + d`` and ``f_i = log sum_j exp(Z_ij) - Z_{i, y_i}``.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)`` of one sample; ``H`` and ``W`` must be divisible by ``2**L``.
    channels : sequence of int
        Output channels of the ``L`` convolution layers.
    kernel_size : int
        Odd side ``k`` of the square kernels; padding ``p = (k - 1) / 2`` keeps ``H x W``.
    hidden : int
        Units of the fully connected layer.
    num_classes : int
        Number of classes (``>= 2``).
    l2 : float
        L2 strength ``lam``.

    Notes
    -----
    ``X`` is ``(n, C*H*W)`` (flat rows, as minifed datasets store images) or ``(n, C, H, W)``.
    ``w`` holds, in this order: for each conv layer ``conv{l}.K`` ``(O, C, k, k)`` and
    ``conv{l}.b`` ``(O,)``; then ``fc.W`` ``(H_L*W_L*O_L, hidden)``, ``fc.b`` ``(hidden,)``,
    ``out.W`` ``(hidden, num_classes)``, ``out.b`` ``(num_classes,)``. The rows of ``fc.W``
    follow the NHWC flattening ``(h, w, c)`` of the last pooled map.

    Examples
    --------
    >>> CNN().num_params  # the FedAvg paper's MNIST CNN
    1663370
    >>> model = CNN((1, 8, 8), channels=(2, 3), kernel_size=3, hidden=8, num_classes=3)
    >>> w = model.init(np.random.default_rng(0))
    >>> model.predict(w, np.zeros((4, 64))).shape
    (4,)
    """

    def __init__(self, input_shape=(1, 28, 28), channels=(32, 64), kernel_size: int = 5,
                 hidden: int = 512, num_classes: int = 10, l2: float = 0.0):  # fmt: skip
        super().__init__(l2)
        if len(tuple(input_shape)) != 3:
            raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}.")
        self.input_shape = tuple(check_int("input_shape", s, minimum=1) for s in input_shape)
        self.channels = tuple(check_int("channels", c, minimum=1) for c in channels)
        if not self.channels:
            raise ValueError("channels must list at least one convolution layer.")
        self.kernel_size = check_int("kernel_size", kernel_size, minimum=1)
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}.")
        self.hidden = check_int("hidden", hidden, minimum=1)
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        _, H, W = self.input_shape
        for l in range(1, len(self.channels) + 1):
            if H % 2 or W % 2:
                raise ValueError(
                    f"input_shape {self.input_shape}: the 2x2 max-pool after conv{l} needs an even "
                    f"height and width, got {H} x {W}; H and W must be divisible by "
                    f"{2 ** len(self.channels)}."
                )
            H, W = H // 2, W // 2

    def _layout(self):
        C, H, W = self.input_shape
        k, layout = self.kernel_size, []
        for l, O in enumerate(self.channels, start=1):
            layout += [(f"conv{l}.K", (O, C, k, k)), (f"conv{l}.b", (O,))]
            C, H, W = O, H // 2, W // 2
        layout += [("fc.W", (H * W * C, self.hidden)), ("fc.b", (self.hidden,))]
        return [*layout, ("out.W", (self.hidden, self.num_classes)), ("out.b", (self.num_classes,))]

    def init(self, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
        """He uniform ``K, W ~ U(-a, a)`` with ``a = sqrt(6 / fan_in)`` (``fan_in = C k^2`` for a
        kernel, the number of rows for a matrix); biases 0. Same draws for every dtype."""
        check_rng("rng", rng)
        w = np.zeros(self.num_params, dtype=dtype)
        for name, block in self.unflatten(w).items():
            if name.endswith(".b"):
                continue
            fan_in = block[0].size if block.ndim == 4 else block.shape[0]  # C k^2, or rows
            a = np.sqrt(6.0 / fan_in)
            block[...] = rng.uniform(-a, a, size=block.shape)
        return w

    def check_data(self, X, y=None, names: tuple[str, str] = ("X", "y")):
        """Validate as :meth:`Model.check_data` and check the shape of each sample."""
        checked = super().check_data(X, y, names)
        shape = (checked if y is None else checked[0]).shape
        C, H, W = self.input_shape
        if shape[1:] not in ((C * H * W,), (C, H, W)):
            raise ValueError(
                f"{names[0]} must have shape (n, {C * H * W}) (flat rows) or (n, {C}, {H}, {W}) "
                f"for {self!r}, got shape {shape}."
            )
        return checked

    # ----- forward and backward passes, CHUNK samples at a time -----
    def _forward_all(self, w, X):
        """Logits ``(n, classes)`` and the intermediate arrays backprop needs."""
        P, n, p = self.unflatten(w), len(X), self.kernel_size // 2
        C, H, W = self.input_shape
        A = X.reshape(n, C, H, W).transpose(0, 2, 3, 1)  # (n, H, W, C) view
        convs = []
        for l in range(1, len(self.channels) + 1):
            Xpad = np.zeros((n, H + 2 * p, W + 2 * p, C), dtype=w.dtype)  # (n, H+2p, W+2p, C)
            Xpad[:, p : p + H, p : p + W] = A
            Z, cols = _conv_forward(Xpad, P[f"conv{l}.K"], P[f"conv{l}.b"])  # (n, H, W, O)
            M = _maxpool_forward(Z)  # (n, H/2, W/2, O)
            A = np.maximum(M, 0)  # (n, H/2, W/2, O)
            convs.append((cols, Z, M))
            C, H, W = Z.shape[3], H // 2, W // 2
        a = A.reshape(n, H * W * C)  # (n, H*W*C) flattened in (h, w, c) order
        Hid = a @ P["fc.W"]  # (n, hidden)
        Hid += P["fc.b"]
        np.maximum(Hid, 0, out=Hid)
        logits = Hid @ P["out.W"]  # (n, classes)
        logits += P["out.b"]
        return logits, (convs, a, Hid)

    def _forward(self, w, X):
        out = np.empty((len(X), self.num_classes), dtype=w.dtype)  # (n, classes)
        for s in range(0, len(X), FORWARD_CHUNK):
            out[s : s + FORWARD_CHUNK] = self._forward_all(w, X[s : s + FORWARD_CHUNK])[0]
        return out

    def _example_losses(self, out, y):
        return softmax_cross_entropy(out, y)

    def _data_loss_and_grad(self, w, X, y, g):
        # g = sum_s (n_s / n) grad_s: the first chunk writes into g, each later one into g_s, added
        loss, g_s = 0.0, None
        for s in range(0, len(X), CHUNK):
            p_s = len(y[s : s + CHUNK]) / len(y)
            if s == 0:
                loss += p_s * self._backprop(w, X[:CHUNK], y[:CHUNK], g, p_s)
                continue
            g_s = np.empty_like(g) if g_s is None else g_s
            loss += p_s * self._backprop(w, X[s : s + CHUNK], y[s : s + CHUNK], g_s, p_s)
            g += g_s
        return loss

    def _backprop(self, w, X, y, g, scale: float) -> float:
        """Write ``scale * grad`` of the mean loss on ``(X, y)`` into ``g``; return the mean loss.

        The products are written straight into the views of ``g`` (``np.matmul(..., out=)``): no
        temporary, and no zeroing of ``g`` first.
        """
        P, G, p = self.unflatten(w), self.unflatten(g), self.kernel_size // 2
        dZ, (convs, a, Hid) = self._forward_all(w, X)
        loss = softmax_cross_entropy_grad_(dZ, y)  # dZ (n, classes) now holds dF/dZ
        dZ *= scale
        np.matmul(Hid.T, dZ, out=G["out.W"])  # (hidden, classes) dF/dV = Hid^T dZ
        dZ.sum(axis=0, out=G["out.b"])
        dHid = dZ @ P["out.W"].T  # (n, hidden)
        dHid *= Hid > 0  # ReLU backward
        np.matmul(a.T, dHid, out=G["fc.W"])  # (H*W*C, hidden) dF/dW = a^T dHid
        dHid.sum(axis=0, out=G["fc.b"])
        # dA = dHid W^T, computed as (W dHid^T)^T: faster in OpenBLAS (n = 10: 1.0 -> 0.7 ms)
        dA = (P["fc.W"] @ dHid.T).T  # (n, H*W*C) view of a (H*W*C, n) array
        for l in range(len(self.channels), 0, -1):
            cols, Z, M = convs[l - 1]
            dM = dA.reshape(M.shape) * (M > 0)  # (n, H/2, W/2, O) ReLU backward
            dZconv = _maxpool_backward(dM, Z, M)  # (n, H, W, O)
            dK, db, dXpad = _conv_backward(dZconv, cols, P[f"conv{l}.K"], input_grad=l > 1)
            G[f"conv{l}.K"][...] = dK
            G[f"conv{l}.b"][...] = db
            if l > 1:
                H, W = Z.shape[1:3]
                dA = dXpad[:, p : p + H, p : p + W]  # (n, H, W, C) of layer l - 1's output
        return loss
