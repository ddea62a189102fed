"""EinsumDense's equation arithmetic: which axes an equation contracts, the kernel, bias and
output shapes it implies, and the layouts of the quantization scales.

An equation has one of Keras's three forms: `I,K->O` (the first label of `I` and `O` is the
batch axis), `...I,K->...O` (the ellipsis holds the batch axis and any others) and
`I...,K->O...` (the ellipsis holds trailing axes). `output_shape` gives the sizes of the
output's labelled axes, without the batch axis (in the first and third forms) and without
the ellipsis; None takes the input's size.

Quantization scales are laid out as Keras 3.15.1's EinsumDense lays them out: a scale has the
output's rank, with the size of each output axis that the scaled operand has and 1 for the
others (`"abc,cde->abde"`: the kernel's scale `(1, 1, d, e)`), so it divides the product's
result directly.
"""

from __future__ import annotations

import dataclasses
import math
import re
import string

from keras import ops

from keraslayers.layers import validation

_LABELS = "[a-zA-Z]"
_FORMS = (
    (None, re.compile(rf"({_LABELS}+),({_LABELS}+)->({_LABELS}+)")),
    ("left", re.compile(rf"\.\.\.({_LABELS}+),({_LABELS}+)->\.\.\.({_LABELS}+)")),
    ("right", re.compile(rf"({_LABELS}{{2,}})\.\.\.,({_LABELS}+)->({_LABELS}+)\.\.\.")),
)


@dataclasses.dataclass(frozen=True)
class Equation:
    """The labels of an equation's operands (the ellipsis left out) and where it is."""

    inputs: str
    kernel: str
    outputs: str
    ellipsis: str | None  # None, "left" or "right"

    def output_shape_length(self) -> int:
        """How many sizes `output_shape` gives: every labelled output axis but the batch."""
        return len(self.outputs) - (0 if self.ellipsis == "left" else 1)

    def elided(self, rank: int) -> int:
        return rank - len(self.inputs)

    def expanded(self, rank: int) -> tuple[str, str]:
        """Input and output labels of an input of `rank`, the ellipsis axes named too."""
        elided = self.elided(rank)
        unused = [c for c in string.ascii_letters
                  if c not in self.inputs + self.kernel + self.outputs]
        fresh = "".join(unused[:elided])
        if self.ellipsis == "left":
            return fresh + self.inputs, fresh + self.outputs
        if self.ellipsis == "right":
            return self.inputs + fresh, self.outputs + fresh
        return self.inputs, self.outputs


def parse(layer, equation) -> Equation:
    """The equation's labels, or a ValueError naming the layer and the equation."""
    described = validation.describe(layer)
    if isinstance(equation, str):
        for ellipsis, form in _FORMS:
            match = form.fullmatch(equation)
            if match:
                parsed = Equation(*match.groups(), ellipsis)
                break
        else:
            parsed = None
    else:
        parsed = None
    if parsed is None:
        raise ValueError(
            f"{described}: invalid `equation`, received equation={equation!r}; expected the "
            "form 'ab,bc->ac', '...b,bc->...c' or 'ab...,bc->ac...' (letters only)."
        )
    for operand, labels in (("input", parsed.inputs), ("kernel", parsed.kernel),
                            ("output", parsed.outputs)):
        repeated = sorted({c for c in labels if labels.count(c) > 1})
        if repeated:
            raise ValueError(
                f"{described}: the {operand} of `equation` repeats the labels {repeated}, "
                f"received equation={equation!r}; each axis needs its own label."
            )
    for label in parsed.outputs:
        if label not in parsed.inputs and label not in parsed.kernel:
            raise ValueError(
                f"{described}: output label '{label}' of `equation` is in neither the input "
                f"nor the kernel, received equation={equation!r}."
            )
    for label in parsed.kernel:
        if label not in parsed.inputs and label not in parsed.outputs:
            raise ValueError(
                f"{described}: kernel label '{label}' of `equation` is in neither the input "
                f"nor the output (its size would be unknown), received equation={equation!r}."
            )
    if parsed.ellipsis != "left":
        batch = parsed.inputs[0]
        if parsed.outputs[0] != batch or batch in parsed.kernel:
            raise ValueError(
                f"{described}: the first input label '{batch}' of `equation` is the batch "
                "axis: it must also be the first output label and not be a kernel label, "
                f"received equation={equation!r}."
            )
    return parsed


def checked_output_shape(layer, parsed: Equation, output_shape) -> tuple:
    """`output_shape` as a tuple of positive ints and Nones of the length the equation asks."""
    shape = (output_shape,) if isinstance(output_shape, int) else output_shape
    try:
        shape = tuple(shape)
    except TypeError:
        shape = None
    if shape is None or any(
        size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0)
        for size in shape
    ):
        raise ValueError(
            f"{validation.describe(layer)}: `output_shape` must be a positive integer or a "
            f"sequence of positive integers and None, received output_shape={output_shape!r}."
        )
    expected = parsed.output_shape_length()
    if len(shape) != expected:
        raise ValueError(
            f"{validation.describe(layer)}: `output_shape` must give {expected} sizes, one per "
            f"output label of the equation {parsed.outputs!r} but the batch axis and the "
            f"ellipsis, received output_shape={output_shape!r}."
        )
    return shape


def checked_bias_axes(layer, parsed: Equation, bias_axes):
    if bias_axes is None:
        return None
    if not isinstance(bias_axes, str) or not bias_axes:
        raise ValueError(
            f"{validation.describe(layer)}: `bias_axes` must be None or a string of output "
            f"labels, received bias_axes={bias_axes!r}."
        )
    for label in bias_axes:
        if label not in parsed.outputs:
            raise ValueError(
                f"{validation.describe(layer)}: bias label '{label}' is not an output label "
                f"of the equation ({parsed.outputs!r}), received bias_axes={bias_axes!r}."
            )
    return bias_axes


@dataclasses.dataclass(frozen=True)
class Layout:
    """The equation resolved for one input rank: labels, sizes and shapes."""

    inputs: str  # input labels, the ellipsis axes named
    kernel: str
    outputs: str
    sizes: dict  # label -> size (None where unknown)
    bias_shape: tuple | None

    @property
    def kernel_shape(self) -> tuple:
        return tuple(self.sizes[c] for c in self.kernel)

    @property
    def output_shape(self) -> tuple:
        return tuple(self.sizes[c] for c in self.outputs)

    @property
    def kernel_fan_axes(self) -> tuple[list[int], list[int]]:
        """Kernel axes of the input features (fan in) and of the output features (fan out)."""
        fan_out = [i for i, c in enumerate(self.kernel) if c in self.outputs]
        return [i for i in range(len(self.kernel)) if i not in fan_out], fan_out

    @property
    def kernel_reduced_axes(self) -> tuple[int, ...]:
        """Kernel axes the product sums over (the quantizer reduces them)."""
        return tuple(i for i, c in enumerate(self.kernel) if c not in self.outputs)

    @property
    def input_reduced_axes(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.inputs) if c not in self.outputs)

    @property
    def kernel_rows_columns(self) -> tuple[int, int]:
        """Keras's int4 2D view of the kernel: the summed axes' sizes multiplied (rows)
        and the others' (columns); the kernel is reshaped to it as stored, in its order."""
        reduced = self.kernel_reduced_axes
        shape = self.kernel_shape
        rows = math.prod(shape[i] for i in reduced)
        return rows, math.prod(shape) // rows

    @property
    def kernel_scale_shape(self) -> tuple:
        """The per-channel kernel scale: output rank, the kernel's sizes where it has the
        output's axes, 1 elsewhere."""
        return tuple(self.sizes[c] if c in self.kernel else 1 for c in self.outputs)

    @property
    def input_gradient_equation(self) -> str:
        """`outputs, kernel -> inputs` without the input axes that neither has (summed out by
        the forward pass: their gradient is a broadcast)."""
        kept = "".join(c for c in self.inputs if c in self.outputs or c in self.kernel)
        return f"{self.outputs},{self.kernel}->{kept}"

    def to_output_layout(self, scale, operand: str):
        """A scale of the `operand`'s ("input" or "kernel") rank, 1 on its summed axes (a
        quantizer's keepdims result), laid out against the output."""
        labels = self.inputs if operand == "input" else self.kernel
        reduced = [i for i, c in enumerate(labels) if c not in self.outputs]
        kept = [c for c in labels if c in self.outputs]
        if reduced:
            scale = ops.squeeze(scale, axis=tuple(reduced))
        order = [kept.index(c) for c in self.outputs if c in kept]
        if order != sorted(order):
            scale = ops.transpose(scale, order)
        missing = [i for i, c in enumerate(self.outputs) if c not in kept]
        if missing:
            scale = ops.expand_dims(scale, axis=tuple(missing))
        return scale

    def kernel_layout_scale(self, scale):
        """The kernel scale (output layout) laid out against the kernel, to divide it."""
        kept = [c for c in self.outputs if c in self.kernel]
        missing = [i for i, c in enumerate(self.outputs) if c not in self.kernel]
        if missing:
            scale = ops.squeeze(scale, axis=tuple(missing))
        order = [kept.index(c) for c in self.kernel if c in kept]
        if order != sorted(order):
            scale = ops.transpose(scale, order)
        reduced = list(self.kernel_reduced_axes)
        if reduced:
            scale = ops.expand_dims(scale, axis=tuple(reduced))
        return scale

    def input_gradient(self, upstream, float_kernel, inputs):
        """d(sum(upstream * einsum(inputs, kernel))) / d inputs."""
        gradient = ops.einsum(self.input_gradient_equation, upstream, float_kernel)
        summed = [i for i, c in enumerate(self.inputs)
                  if c not in self.outputs and c not in self.kernel]
        if summed:
            gradient = ops.broadcast_to(
                ops.expand_dims(gradient, axis=tuple(summed)), ops.shape(inputs)
            )
        return gradient


def resolve(layer, parsed: Equation, input_shape, output_shape, need_weights=True) -> Layout:
    """The equation's layout for `input_shape`; ValueErrors name the layer for an input of
    the wrong rank, sizes that disagree with `output_shape` and (`need_weights`) weight
    sizes that are unknown."""
    described = validation.describe(layer)
    input_shape = tuple(input_shape)
    rank = len(input_shape)
    elided = parsed.elided(rank)
    least = {None: 0, "left": 1, "right": 0}[parsed.ellipsis]
    if elided < least or (parsed.ellipsis is None and elided != 0):
        expected = (f"rank {len(parsed.inputs)}" if parsed.ellipsis is None
                    else f"rank >= {len(parsed.inputs) + least}")
        raise ValueError(
            f"{described}: the equation {layer.equation!r} takes inputs of {expected}, "
            f"received an input of shape {input_shape}."
        )
    inputs, outputs = parsed.expanded(rank)
    sizes = dict(zip(inputs, input_shape, strict=True))
    given = parsed.outputs if parsed.ellipsis == "left" else parsed.outputs[1:]
    for label, size in zip(given, output_shape, strict=True):
        known = sizes.get(label)
        if size is not None and known is not None and size != known:
            raise ValueError(
                f"{described}: `output_shape` gives axis '{label}' size {size}, but the "
                f"input's axis '{label}' has size {known} (input shape {input_shape}, "
                f"output_shape={tuple(output_shape)})."
            )
        if size is not None or label not in sizes:
            sizes[label] = size
    bias_shape = None
    bias_axes = layer.bias_axes
    if bias_axes:
        first = min(parsed.outputs.index(c) for c in bias_axes)
        bias_shape = tuple(sizes[c] if c in bias_axes else 1 for c in parsed.outputs[first:])
        if parsed.ellipsis == "right":
            bias_shape += (1,) * elided
    layout = Layout(inputs, parsed.kernel, outputs, sizes, bias_shape)
    if need_weights:
        for what, shape in (("kernel", layout.kernel_shape), ("bias", bias_shape or ())):
            if any(size is None for size in shape):
                raise ValueError(
                    f"{described}: the {what} shape {shape} has unknown sizes: give them in "
                    f"`output_shape` (received output_shape={tuple(output_shape)}) or in the "
                    f"input (received input shape {input_shape})."
                )
    return layout
