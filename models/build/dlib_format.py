"""Reader for dlib's binary serialization of `anet_type` (dlib_face_recognition_resnet_model_v1.dat).

The format, from dlib/serialize.h and dlib/dnn/{core,layers,input}.h:
- integer: one control byte (low nibble = byte count, bit 0x80 = negative), then little-endian bytes;
- string: integer length, then bytes;  bool: ASCII '0' or '1';
- float/double: integer mantissa m and integer exponent e, value m * 2**e (e 32000..32002 = +inf, -inf, nan);
- tensor: version 2, four dims (num_samples, k, nr, nc), raw little-endian float32 data;
  alias_tensor (shape only): version 1, four dims.

A network is written top-down: the loss layer, then one version integer per layer from the top of the network to
the bottom (add_layer = 2, tag/skip = 1, the bottom add_layer that owns the input layer = 3), then the input layer,
then every add_layer's own data from the bottom up. Tag and skip layers store nothing but their version, so the
residual wiring is not in the file: `EXPECTED_LAYOUT` below restates dlib's `anet_type` and every layer read is
checked against it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------------------------------------------------------
# The network, restated from anet_type in dlib/tools/python/src/face_recognition.cpp (bottom-up):
#   block<N,stride>     = affine<con<N,3,3,1,1, relu<affine<con<N,3,3,stride,stride, X>>>>>
#   ares<N>             = relu<add_prev1<block<N,1,tag1<X>>>>
#   ares_down<N>        = relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<X>>>>>>>
#   alevel4 = 3 x ares<32>;  alevel3 = ares_down<64> + 3 x ares<64>;  alevel2 = ares_down<128> + 2 x ares<128>;
#   alevel1 = ares_down<256> + 2 x ares<256>;  alevel0 = ares_down<256>
#   net = loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<...alevel4<
#             max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>
# Each entry: (kind, params). kinds: con(filters, kernel, stride), affine, relu, max_pool(k, s), avg_pool(k, s),
# avg_pool_all, add_prev(tag), tag(n), skip(n), fc(outputs).
# ---------------------------------------------------------------------------------------------------------------


def _block(n: int, stride: int) -> list[tuple]:
    return [("con", n, 3, stride), ("affine",), ("relu",), ("con", n, 3, 1), ("affine",)]


def _ares(n: int) -> list[tuple]:
    return [("tag", 1), *_block(n, 1), ("add_prev", 1), ("relu",)]


def _ares_down(n: int) -> list[tuple]:
    return [("tag", 1), *_block(n, 2), ("tag", 2), ("skip", 1), ("avg_pool", 2, 2), ("add_prev", 2), ("relu",)]


EXPECTED_LAYOUT: list[tuple] = [
    ("con", 32, 7, 2), ("affine",), ("relu",), ("max_pool", 3, 2),
    *_ares(32), *_ares(32), *_ares(32),                                   # alevel4
    *_ares_down(64), *_ares(64), *_ares(64), *_ares(64),                  # alevel3
    *_ares_down(128), *_ares(128), *_ares(128),                           # alevel2
    *_ares_down(256), *_ares(256), *_ares(256),                           # alevel1
    *_ares_down(256),                                                     # alevel0
    ("avg_pool_all",), ("fc", 128),
]

# dlib's default padding: k/2 for stride 1, 0 otherwise (layers.h `_padding_y = _stride_y!=1? 0 : _nr/2`).
def default_padding(kernel: int, stride: int) -> int:
    return kernel // 2 if stride == 1 else 0


class DlibFormatError(ValueError):
    """The file does not have the structure this reader (and the converter) expects."""


@dataclass
class Layer:
    """One layer as read from the file, bottom-up. Weights are numpy float32 arrays in dlib's layouts."""

    kind: str
    params: dict = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibResnet:
    input_means: tuple[float, float, float]  # per-channel means in RGB order, subtracted before / 256
    input_size: int
    layers: list[Layer]
    distance_threshold: float
    margin: float


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of file at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def integer(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8:
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def string(self) -> str:
        return self._take(self.integer()).decode("ascii")

    def real(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        special = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}
        return special.get(exponent, mantissa * 2.0 ** exponent)

    def boolean(self) -> bool:
        char = self._take(1)
        if char not in (b"0", b"1"):
            raise DlibFormatError(f"bad bool {char!r} at byte {self.pos - 1}")
        return char == b"1"

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at byte {self.pos}, expected 2")
        dims = tuple(self.integer() for _ in range(4))
        count = int(np.prod(dims))
        return np.frombuffer(self._take(4 * count), dtype="<f4").reshape(dims).astype(np.float32)

    def alias_shape(self) -> tuple[int, ...]:
        version = self.integer()
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version} at byte {self.pos}, expected 1")
        return tuple(self.integer() for _ in range(4))

    def expect_string(self, wanted: str) -> None:
        got = self.string()
        if got != wanted:
            raise DlibFormatError(f"expected {wanted!r}, found {got!r} at byte {self.pos}")


def _read_details(r: _Reader, version: str) -> Layer:
    """One layer's own data (the `details` object of dlib's add_layer), by its version string."""
    if version == "con_4":
        params = r.tensor().reshape(-1)
        filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (r.integer() for _ in range(7))
        w_shape, b_shape = r.alias_shape(), r.alias_shape()
        for _ in range(4):  # learning-rate / weight-decay multipliers: training only
            r.real()
        n_w = int(np.prod(w_shape))
        if params.size != n_w + filters or w_shape[0] != filters or b_shape != (1, filters, 1, 1):
            raise DlibFormatError(f"con_4: inconsistent shapes {params.size=} {w_shape=} {b_shape=}")
        if rows != cols or stride_y != stride_x or pad_y != pad_x:
            raise DlibFormatError("con_4: non-square kernels, strides or paddings are not expected here")
        return Layer("con", {"filters": filters, "kernel": rows, "stride": stride_y, "padding": pad_y},
                     {"W": params[:n_w].reshape(w_shape), "b": params[n_w:].copy()})
    if version == "affine_":
        params = r.tensor().reshape(-1)
        g_shape, b_shape = r.alias_shape(), r.alias_shape()
        mode = r.integer()
        channels = g_shape[1]
        if g_shape != (1, channels, 1, 1) or b_shape != g_shape or params.size != 2 * channels or mode != 0:  # 0 = CONV_MODE (per channel)
            raise DlibFormatError(f"affine_: unexpected layout {g_shape=} {b_shape=} {mode=}")
        return Layer("affine", {"channels": channels}, {"gamma": params[:channels].copy(), "beta": params[channels:].copy()})
    if version == "relu_":
        return Layer("relu")
    if version == "add_prev_":
        return Layer("add_prev")
    if version in ("max_pool_2", "avg_pool_2"):
        rows, cols, stride_y, stride_x, pad_y, pad_x = (r.integer() for _ in range(6))
        if rows != cols or stride_y != stride_x or pad_y != pad_x:
            raise DlibFormatError(f"{version}: non-square pooling is not expected here")
        kind = version[:-2]
        if kind == "avg_pool" and rows == 0:
            return Layer("avg_pool_all", {"stride": stride_y})
        return Layer(kind, {"kernel": rows, "stride": stride_y, "padding": pad_y})
    if version == "fc_2":
        outputs, inputs = r.integer(), r.integer()
        params = r.tensor().reshape(-1)
        w_shape, b_shape = r.alias_shape(), r.alias_shape()
        bias_mode = r.integer()
        for _ in range(4):
            r.real()
        if bias_mode != 1 or params.size != inputs * outputs or w_shape[:2] != (inputs, outputs):
            raise DlibFormatError(f"fc_2: expected fc_no_bias {inputs}x{outputs}, got {w_shape=} {bias_mode=}")
        return Layer("fc", {"outputs": outputs, "inputs": inputs}, {"W": params.reshape(inputs, outputs)})
    raise DlibFormatError(f"unsupported layer version {version!r}")


def _check(layer: Layer, expected: tuple, index: int) -> None:
    """Compare one read layer with the anet_type layout; raise on the first difference."""
    kind = expected[0]
    if layer.kind != kind:
        raise DlibFormatError(f"layer {index}: file has {layer.kind!r}, anet_type has {kind!r}")
    p = layer.params
    if kind == "con":
        _, filters, kernel, stride = expected
        want = {"filters": filters, "kernel": kernel, "stride": stride, "padding": default_padding(kernel, stride)}
        if p != want:
            raise DlibFormatError(f"layer {index}: con {p} != expected {want}")
    elif kind in ("max_pool", "avg_pool"):
        _, kernel, stride = expected
        want = {"kernel": kernel, "stride": stride, "padding": default_padding(kernel, stride)}
        if p != want:
            raise DlibFormatError(f"layer {index}: {kind} {p} != expected {want}")
    elif kind == "fc" and p["outputs"] != expected[1]:
        raise DlibFormatError(f"layer {index}: fc outputs {p['outputs']} != {expected[1]}")


def read_dlib_resnet(data: bytes) -> DlibResnet:
    """Parse the whole file, checking every layer against EXPECTED_LAYOUT and that nothing is left over."""
    r = _Reader(data)
    if r.integer() != 1:
        raise DlibFormatError("expected loss layer version 1")
    r.expect_string("loss_metric_2")
    margin, distance_threshold = r.real(), r.real()

    # One version integer per layer, top-down, ending with the bottom layer (version 3, owns the input layer).
    versions: list[int] = []
    while not versions or versions[-1] != 3:
        versions.append(r.integer())
        if len(versions) > 1000:
            raise DlibFormatError("no input layer found")
    expected_versions = [1 if e[0] in ("tag", "skip") else 2 for e in EXPECTED_LAYOUT]
    expected_versions[0] = 3
    if versions[::-1] != expected_versions:
        raise DlibFormatError(f"layer sequence differs from anet_type ({len(versions)} layers in the file, "
                              f"{len(expected_versions)} expected)")

    r.expect_string("input_rgb_image_sized")
    means = (r.real(), r.real(), r.real())
    rows, cols = r.integer(), r.integer()
    if rows != cols:
        raise DlibFormatError(f"non-square input {rows}x{cols}")

    layers: list[Layer] = []
    for index, expected in enumerate(EXPECTED_LAYOUT):
        if expected[0] in ("tag", "skip"):
            layers.append(Layer(expected[0], {"id": expected[1]}))
            continue
        if expected[0] == "add_prev":
            layer = _read_details(r, r.string())
            _check(layer, expected, index)
            layer.params["tag"] = expected[1]
        else:
            layer = _read_details(r, r.string())
            _check(layer, expected, index)
        # add_layer state after the details: three flags, then three training buffers (x_grad, cached_output,
        # params_grad or grad_final) that a saved, trained network leaves empty.
        for _ in range(3):
            r.boolean()
        for _ in range(3):
            if r.tensor().size:
                raise DlibFormatError(f"layer {index}: unexpected non-empty training buffer")
        if index == 0:
            if r.integer() != 1:  # sample expansion factor of the input layer
                raise DlibFormatError("input layer: sample expansion factor != 1")
        layers.append(layer)
    if r.pos != len(data):
        raise DlibFormatError(f"{len(data) - r.pos} bytes left over after the last layer")
    return DlibResnet(means, rows, layers, distance_threshold, margin)
