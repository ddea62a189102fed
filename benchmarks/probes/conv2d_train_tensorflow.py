"""Why a Conv2D training step stays below 70% of the peak on TensorFlow (CPU).

The bench's largest Conv2D case (3x3, 64 -> 64 filters on 56x56, batch 16) reaches 85% of
the measured peak in predict but 68% in training. A training step of a first layer is its
forward convolution plus the kernel's gradient (Conv2DBackpropFilter), both TensorFlow's
own oneDNN kernels, plus the loss, the bias gradient and the update. This probe times,
interleaved and in raw TensorFlow (no Keras):

- forward: `tf.nn.conv2d`.
- kernel_gradient: `Conv2DBackpropFilter` on an output gradient of the same shape.
- im2col_gradient: the kernel gradient as one matrix product of the 9 shifted inputs with the
  output gradient, the other way a layer could compute it.
- raw_step: forward, MSE loss against zeros, gradients of kernel and bias, SGD update, as
  one `tf.function` (what `klayers bench` times through Keras).
- keras_step: our Conv2D in a Keras model, `train_on_batch` with MSE and SGD, as the bench
  times it (the same work as raw_step, plus Keras's loss and loss tracking).
- peak: the best of float32 matrix products of 2048 and 4096 squared.

Run: `python benchmarks/probes/conv2d_train_tensorflow.py` (2 threads, as the bench runs).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import interleaved  # noqa: E402

import keraslayers  # noqa: E402

BATCH, SIZE, CHANNELS = 16, 56, 64
FORWARD_FLOPS = 2 * BATCH * SIZE * SIZE * CHANNELS * CHANNELS * 9


def main():
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    x = tf.random.normal((BATCH, SIZE, SIZE, CHANNELS))
    output_gradient = tf.random.normal((BATCH, SIZE, SIZE, CHANNELS))
    kernel = tf.Variable(tf.random.normal((3, 3, CHANNELS, CHANNELS)) * 0.05)
    bias = tf.Variable(tf.zeros(CHANNELS))
    target = tf.zeros((BATCH, SIZE, SIZE, CHANNELS))

    @tf.function
    def forward():
        return tf.nn.conv2d(x, kernel, 1, "SAME")

    @tf.function
    def kernel_gradient():
        return tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=[3, 3, CHANNELS, CHANNELS], out_backprop=output_gradient,
            strides=[1, 1, 1, 1], padding="SAME")

    @tf.function
    def im2col_gradient():
        padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        columns = tf.concat([padded[:, i:i + SIZE, j:j + SIZE, :]
                             for i in range(3) for j in range(3)], axis=-1)
        return tf.matmul(tf.reshape(columns, (-1, 9 * CHANNELS)),
                         tf.reshape(output_gradient, (-1, CHANNELS)), transpose_a=True)

    @tf.function
    def raw_step():
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(x, kernel, 1, "SAME") + bias
            loss = tf.reduce_mean(tf.square(y - target))
        kernel_grad, bias_grad = tape.gradient(loss, [kernel, bias])
        kernel.assign_sub(1e-3 * kernel_grad)
        bias.assign_sub(1e-3 * bias_grad)
        return loss

    inputs = keras.Input((SIZE, SIZE, CHANNELS))
    model = keras.Model(inputs, keraslayers.Conv2D(CHANNELS, 3, padding="same")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse")

    squares = {n: tf.random.normal((n, n)) for n in (2048, 4096)}
    matmul = tf.function(tf.matmul)
    functions = {name: (lambda f=f: f().numpy()) for name, f in [
        ("forward", forward), ("kernel_gradient", kernel_gradient),
        ("im2col_gradient", im2col_gradient), ("raw_step", raw_step)]}
    functions["keras_step"] = lambda: model.train_on_batch(x, target)
    for n, a in squares.items():
        functions[f"matmul_{n}"] = lambda a=a: matmul(a, a).numpy()
    medians = interleaved(functions, rounds=10, repeats=3)
    rates = {name: FORWARD_FLOPS * (2 if name.endswith("step") else 1) / (us * 1e3)
             for name, us in medians.items() if not name.startswith("matmul")}
    peak = max(2 * n**3 / (medians[f"matmul_{n}"] * 1e3) for n in squares)
    print(f"Conv2D 3x3 {CHANNELS}->{CHANNELS} on {SIZE}x{SIZE}, batch {BATCH}, TensorFlow; "
          f"peak {peak:.0f} GFLOP/s")
    for name, rate in rates.items():
        print(f"  {name:16s} {medians[name] / 1e3:7.2f} ms  {rate:6.1f} GFLOP/s  "
              f"{100 * rate / peak:4.0f}% of peak")


if __name__ == "__main__":
    main()
