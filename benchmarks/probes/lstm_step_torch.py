"""How fast can one LSTM time step run on torch (CPU), and where does the time go?

The bench's LSTM cases (units 128 and 256, batch 32) run about as fast with our layer as with
Keras's, whose torch backend already runs the loop as raw torch ops (keras/src/backend/torch/
rnn.py, `_fallback_lstm`). This probe times one step of that loop in raw torch against the
cheapest formulations of the same arithmetic, without any Keras in between, so it shows the
most any `keras.ops` formulation could gain over Keras's layer on this machine:

- keras_loop: what Keras's torch LSTM runs per step (4 chunks, 3 sigmoids, 2 tanh).
- one_sigmoid: one sigmoid over all four gates (the candidate's tanh from it, as
  2 * sigmoid(2 g) - 1 with the candidate's weights doubled ahead of the loop), and the cell's
  tanh as a sigmoid too: the fewest, cheapest elementwise ops.
- product_only: the recurrent matrix product and the add of the projected inputs, the part no
  formulation avoids.
- torch_nn: `torch.nn.LSTM`'s whole loop in C++ (oneDNN), per step.

Run: `python benchmarks/probes/lstm_step_torch.py` (2 threads, as `klayers bench` runs; the
figures are medians over interleaved rounds, in microseconds per step).
"""

import torch
from timing import interleaved

BATCH, STEPS = 32, 64


def one_step_functions(units):
    h = torch.randn(BATCH, units)
    c = torch.randn(BATCH, units)
    recurrent_kernel = torch.randn(units, 4 * units) / units**0.5
    projected = torch.randn(BATCH, 4 * units)
    u = units

    def keras_loop():
        z = projected + h @ recurrent_kernel
        i, f, g, o = torch.chunk(z, 4, dim=1)
        new_c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(new_c)

    def one_sigmoid():
        s = torch.sigmoid(projected + h @ recurrent_kernel)  # candidate columns pre-doubled
        i, f, g, o = s[:, :u], s[:, u:2 * u], s[:, 2 * u:3 * u], s[:, 3 * u:]
        new_c = f * c + i * (2 * g - 1)
        return o * (2 * torch.sigmoid(2 * new_c) - 1)

    def product_only():
        return projected + h @ recurrent_kernel

    return {"keras_loop": keras_loop, "one_sigmoid": one_sigmoid, "product_only": product_only}


def measure(units):
    """Median microseconds per step of each formulation, and of torch.nn.LSTM."""
    functions = one_step_functions(units)
    lstm = torch.nn.LSTM(units, units)
    sequence = torch.randn(STEPS, BATCH, units)
    functions["torch_nn"] = lambda: lstm(sequence)
    with torch.no_grad():
        medians = interleaved(functions, rounds=30, repeats=100)
    medians["torch_nn"] /= STEPS  # the whole sequence in one call
    return medians


def main():
    torch.set_num_threads(2)
    for units in (128, 256):
        medians = measure(units)
        baseline = medians["keras_loop"]
        print(f"LSTM({units}), batch {BATCH}: microseconds per step (Keras's loop over each)")
        for name, value in medians.items():
            print(f"  {name:13s} {value:8.1f}   {baseline / value:5.2f}x")


if __name__ == "__main__":
    main()
