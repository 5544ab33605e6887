"""Recurrent cells: ``RNN``, ``LSTM`` and ``GRU``, unrolled over a static number of time steps.

The graph is static, so a recurrence cannot loop at run time: calling a cell on an input of shape
(batch, time, features) writes one copy of the cell per time step into the graph (the lecture's
"unrolled RNN": the same cell, and the same parameters, at every step). The time length must
therefore be known when the graph is built; graphs for other lengths are built by calling the
layer again on another input, and share its parameters.

Conventions (the lecture's ``X W + b``, a batch of row vectors): input weights ``w_ih`` have shape
(features, gates * hidden) and recurrent weights ``w_hh`` (hidden, gates * hidden), the gates
side by side in PyTorch's order, so ``torch.nn.LSTM.weight_ih_l0.T`` is ``LSTM.w_ih``. Each cell
has two biases, ``b_ih`` and ``b_hh``, as in PyTorch: redundant for RNN and LSTM (only their sum
matters), needed by GRU, where ``b_hn`` sits inside the reset gate's product.

Initialization, seeded as every layer is (``seed=None`` takes the next seed of ``nn.init``'s
counter, which ``nn.manual_seed`` restarts), each gate block from its own derived seed:

- input weights: ``nn.init.xavier_uniform`` per gate block, U(-a, a) with a = sqrt(6 / (features
  + hidden)): the variance 2 / (fan-in + fan-out) of the lecture's Xavier rule;
- recurrent weights: ``nn.init.orthogonal`` per gate block (Saxe et al., 2014): all its singular
  values are 1, so multiplying by it step after step neither blows the state up nor shrinks it to
  nothing, the recurrent form of the vanishing/exploding gradient problem;
- biases zero, except the LSTM forget gate's input bias, 1.0 (Gers et al., 2000; Jozefowicz et
  al., 2015): with f = sigmoid(1) ~ 0.73 at the start the cell keeps most of its long-term memory,
  so gradients flow back through many steps before the network has learned when to forget.
"""

from __future__ import annotations

import numpy as np

from ..graph import Variable, apply
from ..ops import elementwise as ew
from ..ops.linalg import matmul
from ..ops.shape import Split, squeeze, stack
from . import init as initializers
from .checks import check_input, describe_type, float_dtype, label, positive_int
from .module import LayerError, Module


# ----- the common part ----------------------------------------------------------------------------
class _Recurrent(Module):
    """Parameters, checks and the unrolling loop; subclasses give the gates and the cell update."""

    gates = 1  # gate blocks side by side in w_ih, w_hh, b_ih, b_hh
    state_parts = 1  # 2 for LSTM's (h, c)

    def __init__(self, input_size: int, hidden_size: int, dtype: str = "float32", seed: int | None = None, name=None):
        super().__init__(name)
        who = label(self)
        self.input_size = positive_int(who, "input_size", input_size)
        self.hidden_size = positive_int(who, "hidden_size", hidden_size)
        self.dtype = float_dtype(who, dtype)
        self.seed = initializers.resolve_seed(seed, who)
        self.hparams = {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "dtype": self.dtype,
            "seed": self.seed,
        }
        n_in, h, g = self.input_size, self.hidden_size, self.gates

        def blocks(spec, rows, first):  # gate k of the matrix draws from the seed's (first + k)-th child
            return np.concatenate(
                [
                    initializers.initialize(
                        spec, (rows, h), "dense", initializers.derive_seed(self.seed, first + k), self.dtype
                    )
                    for k in range(g)
                ],
                axis=1,
            )

        self.add_param("w_ih", blocks("xavier_uniform", n_in, 0))
        self.add_param("w_hh", blocks("orthogonal", h, g))
        self.add_param("b_ih", self._input_bias().astype(self.dtype))
        self.add_param("b_hh", np.zeros(g * h, dtype=self.dtype))

    def _input_bias(self) -> np.ndarray:
        return np.zeros(self.gates * self.hidden_size)

    # -- checks ------------------------------------------------------------------------------------
    def _check_state(self, h, what: str, batch) -> Variable:
        hidden = self.hidden_size
        expected = f"(batch, {hidden}) {self.dtype}"
        h = check_input(self, h, expected, ndim=2, sizes={1: hidden}, dtype=self.dtype, what=what)
        rows = h.type.shape[0]
        if batch is not None and rows is not None and batch != rows:
            raise LayerError(f"{label(self)}: {what} has batch {rows} but the input has batch {batch}")
        return h

    def _check_input(self, x) -> Variable:
        n = self.input_size
        x = check_input(self, x, f"(batch, time, {n}) {self.dtype}", ndim=3, sizes={2: n}, dtype=self.dtype)
        steps = x.type.shape[1]
        if steps is None:
            raise LayerError(
                f"{label(self)}: the time length must be static to unroll the cell over it; give the input "
                f"a shape such as (None, 10, {n}) (one graph per sequence length; the layer's parameters are shared)"
            )
        if steps == 0:
            raise LayerError(f"{label(self)}: the input has no time steps (got {describe_type(x)})")
        return x

    def _check_step_input(self, x_t) -> Variable:
        n = self.input_size
        return check_input(self, x_t, f"(batch, {n}) {self.dtype}", ndim=2, sizes={1: n}, dtype=self.dtype, what="x_t")

    # -- building ----------------------------------------------------------------------------------
    def _split_gates(self, z: Variable) -> tuple[Variable, ...]:
        """Cut (batch, gates * hidden) into the gates. Split rather than slices: the gradient of
        ``gates`` slices is ``gates`` zero-filled full-width arrays summed; split's is one concatenate."""
        if self.gates == 1:
            return (z,)
        return apply(Split(z.ndim - 1, (self.hidden_size,) * self.gates), [z])

    def _recurrent(self, h: Variable | None) -> Variable | None:
        """h_{t-1} W_hh + b_hh, or just b_hh for the zero initial state (no product with zeros)."""
        return self.b_hh if h is None else matmul(h, self.w_hh) + self.b_hh

    def _cell(self, xp: Variable, state):
        """One step from the input's projection xp = x_t W_ih + b_ih and the previous state (None: zeros)."""
        raise NotImplementedError

    def step(self, x_t, state=None):
        """One time step: x_t of shape (batch, input_size) and the previous state (None: zeros)
        to the new state (for LSTM the pair (h, c))."""
        x_t = self._check_step_input(x_t)
        state = self._check_initial(state, x_t.type.shape[0])
        return self._cell(matmul(x_t, self.w_ih) + self.b_ih, state)

    def _check_initial(self, state, batch):
        if state is None:
            return None
        return self._check_state(state, "the initial state h0", batch)

    def forward(self, x, state=None):
        """Unroll over the time axis of ``x`` (batch, time, input_size); ``state`` is the initial
        state (None: zeros). Returns (outputs (batch, time, hidden_size), last state)."""
        x = self._check_input(x)
        steps = x.type.shape[1]
        state = self._check_initial(state, x.type.shape[0])
        # Every step's input projection in one (batch*time)-row product, as cuDNN does: only the
        # recurrent product h W_hh has to wait for the previous step.
        xp = matmul(x, self.w_ih) + self.b_ih
        pieces = apply(Split(1, (1,) * steps), [xp])  # split: its gradient is one concatenate
        outputs = []
        for t in range(steps):
            state = self._cell(squeeze(pieces[t], 1), state)
            outputs.append(state[0] if self.state_parts > 1 else state)
        return stack(outputs, axis=1), state


# ----- the cells -----------------------------------------------------------------------------------
class RNN(_Recurrent):
    r"""The plain (Elman) recurrent cell: h_t = tanh(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh).

    ``nonlinearity`` is "tanh" (default) or "relu", as in ``torch.nn.RNN``. Shapes: w_ih
    (input_size, hidden_size), w_hh (hidden_size, hidden_size), b_ih and b_hh (hidden_size,).
    ``rnn(x, h0=None)`` on x (batch, time, input_size) returns (outputs (batch, time, hidden),
    h_T); ``rnn.step(x_t, h)`` is one step.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        dtype: str = "float32",
        seed: int | None = None,
        name: str | None = None,
    ):
        super().__init__(input_size, hidden_size, dtype, seed, name)
        if nonlinearity not in ("tanh", "relu"):
            raise LayerError(f"{label(self)}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.hparams = {**self.hparams, "nonlinearity": nonlinearity}

    def _cell(self, xp, h):
        act = ew.tanh if self.nonlinearity == "tanh" else ew.relu
        return act(xp + self._recurrent(h))


class LSTM(_Recurrent):
    r"""Long short-term memory (Hochreiter & Schmidhuber, 1997), PyTorch's gate order i, f, g, o::

        i_t = sigmoid(x_t W_ii + b_ii + h_{t-1} W_hi + b_hi)     input gate
        f_t = sigmoid(x_t W_if + b_if + h_{t-1} W_hf + b_hf)     forget gate
        g_t = tanh(x_t W_ig + b_ig + h_{t-1} W_hg + b_hg)        response to the current input
        o_t = sigmoid(x_t W_io + b_io + h_{t-1} W_ho + b_ho)     output gate
        c_t = f_t * c_{t-1} + i_t * g_t                          long-term memory (cell state)
        h_t = o_t * tanh(c_t)                                    output, short-term state

    w_ih is [W_ii W_if W_ig W_io] (input_size, 4 hidden_size), w_hh likewise (hidden_size,
    4 hidden_size). ``lstm(x, (h0, c0)=None)`` returns (outputs (batch, time, hidden), (h_T, c_T)).
    The forget gate's input bias starts at 1.0 (see the module docstring).
    """

    gates = 4
    state_parts = 2

    def _input_bias(self) -> np.ndarray:
        b = np.zeros(4 * self.hidden_size)
        b[self.hidden_size : 2 * self.hidden_size] = 1.0
        return b

    def _check_initial(self, state, batch):
        if state is None:
            return None
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise LayerError(f"{label(self)}: the initial state must be a pair (h0, c0), got {type(state).__name__}")
        return (
            self._check_state(state[0], "the initial state h0", batch),
            self._check_state(state[1], "the initial state c0", batch),
        )

    def _cell(self, xp, state):
        h, c = (None, None) if state is None else state
        i, f, g, o = self._split_gates(xp + self._recurrent(h))
        i, f, g, o = ew.sigmoid(i), ew.sigmoid(f), ew.tanh(g), ew.sigmoid(o)
        c = i * g if c is None else f * c + i * g
        return o * ew.tanh(c), c


class GRU(_Recurrent):
    r"""Gated recurrent unit (Cho et al., 2014) in PyTorch's formulation, gate order r, z, n::

        r_t = sigmoid(x_t W_ir + b_ir + h_{t-1} W_hr + b_hr)          reset gate
        z_t = sigmoid(x_t W_iz + b_iz + h_{t-1} W_hz + b_hz)          update gate
        n_t = tanh(x_t W_in + b_in + r_t * (h_{t-1} W_hn + b_hn))     response to the current input
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    The reset gate multiplies the recurrent term after its product (and bias): that is what
    PyTorch and cuDNN compute, and why GRU has two biases. w_ih is [W_ir W_iz W_in]
    (input_size, 3 hidden_size), w_hh likewise. ``gru(x, h0=None)`` returns (outputs, h_T).
    """

    gates = 3

    def _cell(self, xp, h):
        xr, xz, xn = self._split_gates(xp)
        hr, hz, hn = self._split_gates(self._recurrent(h))
        r, z = ew.sigmoid(xr + hr), ew.sigmoid(xz + hz)
        n = ew.tanh(xn + r * hn)
        return (1 - z) * n if h is None else (1 - z) * n + z * h
