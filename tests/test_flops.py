"""Analytic FLOP counts (klayers.bench.flops) against figures worked out by hand."""

import pytest

from klayers.bench.flops import forward_flops, step_flops


def test_dense_is_two_flops_per_multiply_add_plus_the_bias():
    # 8 samples, 16 inputs, 4 units: 8*16*4 multiply-adds, 8*4 bias adds.
    assert forward_flops("Dense", {"units": 4}, (16,), 8) == 2 * 8 * 16 * 4 + 8 * 4 == 1056
    assert forward_flops("Dense", {"units": 4, "use_bias": False}, (16,), 8) == 1024


def test_dense_on_a_sequence_counts_every_position():
    assert forward_flops("Dense", {"units": 3}, (5, 2), 1) == 5 * (2 * 2 * 3 + 3)


def test_training_step_is_three_forward_passes_less_the_input_gradient():
    # Forward 2*8*16*4 + 8*4 (bias); backward for the weights, not for the input: it is data.
    assert step_flops("Dense", {"units": 4}, (16,), 8, "train") == 3 * 1056 - 2 * 8 * 16 * 4
    # A layer without weights gets its input's gradient: three forward passes.
    assert step_flops("ReLU", {}, (16,), 8, "train") == 3 * step_flops("ReLU", {}, (16,), 8)


def test_attention_training_step_leaves_out_the_input_gradients_of_its_projections():
    config = {"num_heads": 2, "key_dim": 4}
    forward = step_flops("MultiHeadAttention", config, (5, 8), 3)
    # The query, key and value projections: 2 heads x 4 dims from 8 features, 15 rows each.
    projections = 3 * 2 * 2 * 15 * 8 * 4
    assert step_flops("MultiHeadAttention", config, (5, 8), 3, "train") == 3 * forward - projections


def test_conv2d_valid_and_same():
    # 32x32x3 input, 16 filters of 3x3, valid: 30x30 outputs, each 3*3*3 multiply-adds per filter.
    config = {"filters": 16, "kernel_size": 3}
    outputs = 2 * 30 * 30
    assert forward_flops("Conv2D", config, (32, 32, 3), 2) == (
        2 * outputs * 16 * 27 + outputs * 16)
    # same padding, stride 2: ceil(32 / 2) = 16 per side.
    strided = {**config, "strides": 2, "padding": "same", "use_bias": False}
    assert forward_flops("Conv2D", strided, (32, 32, 3), 1) == 2 * 16 * 16 * 16 * 27


def test_conv2d_groups_and_channels_first():
    config = {"filters": 8, "kernel_size": 1, "groups": 2, "data_format": "channels_first",
              "use_bias": False}
    # 4 channels in 2 groups: each output channel sees 2 inputs; 5x5 positions.
    assert forward_flops("Conv2D", config, (4, 5, 5), 1) == 2 * 25 * 8 * 2


def test_conv1d_dilated_valid():
    config = {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "use_bias": False}
    # length 10, span (3 - 1) * 2 + 1 = 5: 6 outputs.
    assert forward_flops("Conv1D", config, (10, 4), 1) == 2 * 6 * 2 * 4 * 3


def test_depthwise_and_separable():
    depthwise = {"kernel_size": 3, "depth_multiplier": 2, "padding": "same", "use_bias": False}
    assert forward_flops("DepthwiseConv2D", depthwise, (8, 8, 3), 1) == 2 * 64 * 6 * 9
    separable = {"filters": 4, "kernel_size": 3, "depth_multiplier": 1, "use_bias": False}
    # valid: 6x6 outputs; depthwise 3 channels x 9, then pointwise 3 -> 4.
    assert forward_flops("SeparableConv2D", separable, (8, 8, 3), 1) == (
        2 * 36 * 3 * 9 + 2 * 36 * 3 * 4)


def test_conv_transpose_scatters_a_kernel_per_input_position():
    config = {"filters": 4, "kernel_size": 3, "strides": 2}
    assert forward_flops("Conv2DTranspose", config, (5, 5, 3), 2) == 2 * 2 * 25 * 3 * 4 * 9


def test_pooling_counts_one_operation_per_window_element():
    # 8x8x3, 2x2 windows, stride 2: 4x4 outputs of 4 elements.
    assert forward_flops("MaxPooling2D", {"pool_size": 2}, (8, 8, 3), 1) == 16 * 3 * 4
    assert forward_flops("GlobalAveragePooling1D", {}, (6, 4), 2) == 48


def test_lstm_four_gates_per_step():
    # 10 steps, 8 features, 16 units, batch 2: per step 2 * 2 * (8 + 16) * 64 + 2 * 64.
    per_step = 2 * 2 * 24 * 64 + 2 * 64
    assert forward_flops("LSTM", {"units": 16}, (10, 8), 2) == 10 * per_step
    assert forward_flops("GRU", {"units": 16}, (10, 8), 2) == 10 * (2 * 2 * 24 * 48 + 2 * 48)


def test_bidirectional_runs_the_recurrent_layer_twice():
    inner = {"class_name": "LSTM", "config": {"units": 16}}
    assert forward_flops("Bidirectional", {"layer": inner}, (10, 8), 2) == 2 * forward_flops(
        "LSTM", {"units": 16}, (10, 8), 2)


def test_rnn_counts_each_cell_of_its_stack_on_the_width_below():
    gru = {"class_name": "GRUCell", "config": {"units": 16}}
    lstm = {"class_name": "LSTMCell", "config": {"units": 4}}
    stack = forward_flops("RNN", {"cell": [gru, lstm]}, (10, 8), 2)
    # The GRU reads 8 features, the LSTM the GRU's 16 outputs.
    assert stack == forward_flops("GRU", {"units": 16}, (10, 8), 2) + forward_flops(
        "LSTM", {"units": 4}, (10, 16), 2)
    assert forward_flops("RNN", {"cell": lstm}, (10, 16), 2) == forward_flops(
        "LSTM", {"units": 4}, (10, 16), 2)
    # Training leaves out the input gradient of the first cell's input projection only.
    assert step_flops("RNN", {"cell": [gru, lstm]}, (10, 8), 2, "train") == (
        3 * stack - 10 * 2 * 2 * 8 * 3 * 16)
    assert forward_flops("RNN", {"cell": {"class_name": "MyCell", "config": {}}}, (10, 8),
                         2) is None


def test_multi_head_attention_projections_and_scores():
    # batch 1, 4 targets and 6 sources of width 8; 2 heads of size 3.
    config = {"num_heads": 2, "key_dim": 3}
    projections = 2 * 2 * (4 * 8 * 3 + 6 * 8 * 3 + 6 * 8 * 3 + 4 * 3 * 8)
    scores_and_sum = 2 * 2 * 4 * 6 * (3 + 3)
    assert forward_flops("MultiHeadAttention", config, [(4, 8), (6, 8)], 1) == (
        projections + scores_and_sum)


def test_group_query_attention_shares_key_and_value_heads():
    # batch 1, 4 targets and 6 sources of width 8; 4 query heads and 2 shared, of size 3.
    config = {"head_dim": 3, "num_query_heads": 4, "num_key_value_heads": 2}
    projections = 2 * 3 * (4 * 8 * 4 + 6 * (8 + 8) * 2 + 4 * 4 * 8)
    scores_and_sum = 2 * 4 * 4 * 6 * 2 * 3
    assert forward_flops("GroupQueryAttention", config, [(4, 8), (6, 8)], 1) == (
        projections + scores_and_sum)


def test_normalizations_per_element():
    assert forward_flops("LayerNormalization", {}, (6, 8), 4) == 8 * 4 * 48
    assert forward_flops("RMSNormalization", {}, (6, 8), 4) == 4 * 4 * 48


def test_residual_around_a_dense_with_projection():
    inner = {"class_name": "Dense", "config": {"units": 12}}
    rows = 4
    dense = 2 * rows * 8 * 12 + rows * 12
    assert forward_flops("Residual", {"layer": inner}, (8,), 4) == dense + dense + rows * 12


def test_leaky_and_parametric_relu_per_element():
    assert forward_flops("LeakyReLU", {"negative_slope": 0.2}, (6, 8), 4) == 4 * 48
    # relu(x) - alpha * relu(-x): a multiply and a subtraction per element.
    assert forward_flops("PReLU", {"shared_axes": [1]}, (6, 8), 4) == 2 * 4 * 48
    assert step_flops("PReLU", {}, (6, 8), 4, "train") == 3 * 2 * 4 * 48


def test_masking_compares_and_selects_each_element():
    # A comparison with mask_value and a select per element; the `any` is logical.
    assert forward_flops("Masking", {"mask_value": 0.0}, (6, 8), 4) == 2 * 4 * 48
    assert step_flops("Masking", {}, (6, 8), 4, "train") == 3 * 2 * 4 * 48


def test_upsampling2d_interpolation_is_a_separable_resize():
    # 2 images of 3x4x5, size (2, 3), bilinear (2 taps): rows first (6x4x5 outputs of 2 taps),
    # then columns (6x12x5 outputs of 2 taps); a multiply-add is 2 FLOPs.
    config = {"size": [2, 3], "interpolation": "bilinear"}
    assert forward_flops("UpSampling2D", config, (3, 4, 5), 2) == (
        2 * 2 * (2 * 6 * 4 * 5 + 2 * 6 * 12 * 5))
    channels_first = {**config, "interpolation": "Bicubic", "data_format": "channels_first"}
    assert forward_flops("UpSampling2D", channels_first, (5, 3, 4), 2) == (
        2 * 4 * (2 * 6 * 4 * 5 + 2 * 6 * 12 * 5))
    assert forward_flops("UpSampling2D", {"size": 2}, (3, 4, 5), 2) is None  # nearest copies


@pytest.mark.parametrize("layer", ["Embedding", "Dropout", "Activation", "NoSuchLayer",
                                   "ELU", "Softmax", "UpSampling1D", "UpSampling2D",
                                   "UpSampling3D"])
def test_layers_without_meaningful_flops_give_none(layer):
    assert step_flops(layer, {"input_dim": 10, "output_dim": 4, "rate": 0.5}, (6,), 2) is None


# The bench's parent process counts FLOPs without keras, so flops.py keeps its own copy of
# the output-size rule; these pin it to the layers' own (conv_arithmetic, through
# compute_output_shape) over every padding, stride and dilation.
@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (3, 1), (1, 2), (1, 3)])
@pytest.mark.parametrize("kernel", [1, 2, 3, 5])
def test_convolution_output_sizes_are_the_layers_own(padding, stride, dilation, kernel):
    import keraslayers as kl

    config = {"filters": 1, "kernel_size": kernel, "strides": stride, "padding": padding,
              "dilation_rate": dilation, "use_bias": False}
    for length in range(kernel * dilation, 20):
        outputs = kl.Conv1D(**config).compute_output_shape((1, length, 1))[1]
        assert forward_flops("Conv1D", config, (length, 1), 1) == 2 * outputs * kernel


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("pool, stride", [(2, None), (3, None), (3, 2), (2, 3), (3, 1)])
def test_pooling_output_sizes_are_the_layers_own(padding, pool, stride):
    import keraslayers as kl

    config = {"pool_size": pool, "strides": stride, "padding": padding}
    for length in range(pool, 20):
        outputs = kl.MaxPooling1D(**config).compute_output_shape((1, length, 1))[1]
        assert forward_flops("MaxPooling1D", config, (length, 1), 1) == outputs * pool


def test_depthwise_and_separable_1d():
    # 10 steps, 3 channels, kernel 3, stride 2, "same": 5 outputs; multiplier 2 -> 6 channels.
    depthwise = {"kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2}
    assert forward_flops("DepthwiseConv1D", depthwise, (10, 3), 2) == (
        2 * (2 * 5 * 6 * 3) + 2 * 5 * 6)
    # Then 6 -> 4 pointwise; a training step skips the depthwise product's input gradient.
    separable = {**depthwise, "filters": 4, "use_bias": False}
    forward = 2 * 5 * 6 * 3 + 2 * 5 * 6 * 4
    assert forward_flops("SeparableConv1D", separable, (10, 3), 1) == forward
    assert step_flops("SeparableConv1D", separable, (10, 3), 1, "train") == (
        3 * forward - 2 * 5 * 6 * 3)


def test_additive_attention_sums_a_scaled_tanh_per_pair():
    # batch 2, 3 targets of width 4, 5 sources with values of width 6: per pair, q + k and a
    # multiply-add per feature, then a multiply-add per value feature.
    pairs = 2 * 3 * 5
    assert forward_flops("AdditiveAttention", {}, [(3, 4), (5, 6), (5, 4)], 2) == (
        pairs * (3 * 4 + 2 * 6))
    assert forward_flops("AdditiveAttention", {"use_scale": False}, (3, 4), 2) == (
        2 * 3 * 3 * (2 * 4 + 2 * 4))


def test_einsum_dense_counts_its_contraction_and_bias():
    # "abc,cde->abde": batch 2, 5 positions, 8 features -> 3 heads of 4; bias (3, 4).
    config = {"equation": "abc,cde->abde", "output_shape": [None, 3, 4], "bias_axes": "de"}
    assert forward_flops("EinsumDense", config, (5, 8), 2) == 2 * 2 * 5 * 8 * 3 * 4 + 2 * 5 * 3 * 4
    assert step_flops("EinsumDense", config, (5, 8), 2, "train") == (
        3 * forward_flops("EinsumDense", config, (5, 8), 2) - 2 * 2 * 5 * 8 * 3 * 4)
    # The Dense form counts as Dense; an ellipsis names the leading axes.
    dense_form = {"equation": "...b,bc->...c", "output_shape": 4}
    assert forward_flops("EinsumDense", dense_form, (5, 16), 8) == (
        forward_flops("Dense", {"units": 4, "use_bias": False}, (5, 16), 8))
