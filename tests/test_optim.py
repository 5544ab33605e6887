"""graphc.optim: optimizers and learning-rate schedules.

Every optimizer runs five compiled steps on a small least-squares problem and is compared, after
every step, with (a) the update rule written here in plain numpy, in the lecture's notation, and
(b) torch.optim given the same start and data. Schedules are compared with their formulas, their
compiled symbolic form, PyTorch's schedulers and Caffe's solver fields.
"""

from __future__ import annotations

import numpy as np
import pytest

import graphc as gc
from graphc import nn, optim
from graphc.errors import DTypeError, ShapeError, UsageError

RNG = np.random.default_rng(7)
X = RNG.normal(size=(8, 3))
Y = RNG.normal(size=8)
W0 = RNG.normal(size=3)
B0 = 0.3
STEPS = 5


def problem(dtype="float64"):
    """Least squares with a vector weight and a scalar bias (both are shared variables)."""
    w = gc.shared(W0.astype(dtype), name="w")
    b = gc.shared(np.asarray(B0, dtype=dtype), name="b")
    x, y = gc.matrix("X", dtype=dtype), gc.vector("y", dtype=dtype)
    loss = gc.mean((x @ w + b - y) ** 2)
    return [w, b], [x, y], loss


def numpy_grads(w, b):
    r = X @ w + b - Y
    return [2.0 / len(Y) * X.T @ r, 2.0 * np.mean(r)]


# ----- the rules, written independently in the lecture's notation (seed 004) ----------------------


def ref_sgd(w, g, s, t, lr, wd, momentum=0.0, dampening=0.0, nesterov=False):
    g = g + wd * w
    if momentum:
        s["v"] = g if t == 1 else momentum * s["v"] + (1 - dampening) * g
        g = g + momentum * s["v"] if nesterov else s["v"]
    return w - lr * g


def ref_adagrad(w, g, s, t, lr, wd, eps=1e-10, initial_accumulator_value=0.0, lr_decay=0.0):
    g = g + wd * w
    s["r"] = s.get("r", initial_accumulator_value) + g * g
    eta = lr / (1 + (t - 1) * lr_decay)
    return w - eta / (np.sqrt(s["r"]) + eps) * g


def ref_rmsprop(w, g, s, t, lr, wd, alpha=0.99, eps=1e-8, momentum=0.0, centered=False):
    g = g + wd * w
    s["r"] = alpha * s.get("r", 0.0) + (1 - alpha) * g * g
    r = s["r"]
    if centered:
        s["m"] = alpha * s.get("m", 0.0) + (1 - alpha) * g
        r = r - s["m"] ** 2
    step = g / (np.sqrt(r) + eps)
    if momentum:
        s["v"] = momentum * s.get("v", 0.0) + step
        step = s["v"]
    return w - lr * step


def ref_adam(w, g, s, t, lr, wd, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, decoupled=False):
    beta1, beta2 = betas
    if decoupled:
        w = w - lr * wd * w  # AdamW: pull the weights to zero, outside the normalization
    else:
        g = g + wd * w
    s["s"] = beta1 * s.get("s", 0.0) + (1 - beta1) * g
    s["r"] = beta2 * s.get("r", 0.0) + (1 - beta2) * g * g
    r = s["r"]
    if amsgrad:
        s["r_max"] = r = np.maximum(s.get("r_max", 0.0), r)
    s_hat, r_hat = s["s"] / (1 - beta1**t), r / (1 - beta2**t)
    return w - lr * s_hat / (np.sqrt(r_hat) + eps)


def ref_adamw(*args, **kw):
    return ref_adam(*args, decoupled=True, **kw)


REFS = {"SGD": ref_sgd, "Adagrad": ref_adagrad, "RMSprop": ref_rmsprop, "Adam": ref_adam, "AdamW": ref_adamw}
DEFAULT_DECAY = {"AdamW": 0.01}


def case(name, options, lr, torch_name=None, torch_options=None):
    """(graphc class, its options, torch class, the same options in torch's (and the reference's) terms, lr)"""
    return name, options, torch_name or name, options if torch_options is None else torch_options, lr


CASES = {
    "sgd": case("SGD", {}, 0.05),
    "sgd-momentum": case("SGD", {"momentum": 0.9}, 0.05),
    "sgd-dampening": case("SGD", {"momentum": 0.8, "dampening": 0.3, "weight_decay": 0.05}, 0.05),
    "sgd-nesterov": case("SGD", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, 0.05),
    "momentum": case("Momentum", {}, 0.05, "SGD", {"momentum": 0.9}),
    "nesterov": case("Nesterov", {"momentum": 0.7}, 0.05, "SGD", {"momentum": 0.7, "nesterov": True}),
    "adagrad": case("AdaGrad", {}, 0.1, "Adagrad"),
    "adagrad-options": case(
        "AdaGrad",
        {"eps": 1e-6, "initial_accumulator_value": 0.1, "weight_decay": 0.05, "lr_decay": 0.01},
        0.1,
        "Adagrad",
    ),
    "rmsprop": case("RMSProp", {}, 0.01, "RMSprop"),
    "rmsprop-centered-momentum": case(
        "RMSProp", {"alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01}, 0.01, "RMSprop"
    ),
    "adam": case("Adam", {}, 0.05),
    "adam-options": case("Adam", {"betas": (0.6, 0.99), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True}, 0.05),
    "adamw": case("AdamW", {}, 0.05),
    "adamw-amsgrad": case("AdamW", {"weight_decay": 0.2, "amsgrad": True}, 0.05),
}

# setup: (multipliers (lr_mult, decay_mult) of w and b, or None for a plain list; schedule or None)
SETUPS = {
    "plain": (None, None),
    "groups": (((0.5, 2.0), (2.0, 0.0)), None),
    "schedule": (None, lambda lr: optim.Step(lr, gamma=0.5, step_size=2)),
    "groups+schedule": (((1.0, 1.0), (3.0, 0.5)), lambda lr: optim.MultiStep(lr, 0.3, [1, 3])),
}


def build(case, setup, dtype="float64"):
    name, options, _, _, lr = CASES[case]
    mults, schedule = SETUPS[setup]
    (w, b), inputs, loss = problem(dtype)
    params = [w, b]
    options = dict(options)
    if mults is not None:
        params = [{"params": [p], "lr_mult": m[0], "decay_mult": m[1]} for p, m in zip(params, mults)]
        options.setdefault("weight_decay", 0.05)
    opt = getattr(optim, name)(params, lr=schedule(lr) if schedule else lr, **options)
    return opt, (w, b), gc.function(inputs, loss, updates=opt.updates(loss))


def lr_and_multipliers(case, setup):
    *_, lr = CASES[case]
    mults, schedule = SETUPS[setup]
    rate = schedule(lr).value if schedule else (lambda t: lr)
    return rate, mults or ((1.0, 1.0), (1.0, 1.0)), mults is not None


def reference_run(case, setup):
    _, _, ref_name, options, _ = CASES[case]
    rate, mults, grouped = lr_and_multipliers(case, setup)
    options = dict(options)
    wd = options.pop("weight_decay", 0.05 if grouped else DEFAULT_DECAY.get(ref_name, 0.0))
    params, states, history = [W0.copy(), np.asarray(B0)], [{}, {}], []
    for t in range(STEPS):
        grads = numpy_grads(*params)
        params = [
            REFS[ref_name](p, g, s, t + 1, rate(t) * lr_mult, wd * decay_mult, **options)
            for p, g, s, (lr_mult, decay_mult) in zip(params, grads, states, mults)
        ]
        history.append(params)
    return history


def torch_run(case, setup):
    torch = pytest.importorskip("torch")
    _, _, torch_name, options, _ = CASES[case]
    rate, mults, grouped = lr_and_multipliers(case, setup)
    options = dict(options)
    if grouped:
        options.setdefault("weight_decay", 0.05)
    wd = options.pop("weight_decay", DEFAULT_DECAY.get(torch_name, 0.0))
    tw, tb = torch.tensor(W0, requires_grad=True), torch.tensor(B0, dtype=torch.float64, requires_grad=True)
    groups = [{"params": [p], "lr": rate(0) * m[0], "weight_decay": wd * m[1]} for p, m in zip((tw, tb), mults)]
    opt = getattr(torch.optim, torch_name)(groups, **options)
    tx, ty = torch.tensor(X), torch.tensor(Y)
    history = []
    for t in range(STEPS):
        for group, m in zip(opt.param_groups, mults):
            group["lr"] = rate(t) * m[0]
        opt.zero_grad()
        ((tx @ tw + tb - ty) ** 2).mean().backward()
        opt.step()
        history.append([tw.detach().numpy().copy(), tb.detach().numpy().copy()])
    return history


def graphc_run(case, setup):
    _, (w, b), step = build(case, setup)
    history = []
    for _ in range(STEPS):
        step(X, Y)
        history.append([w.get_value(), b.get_value()])
    return history


def assert_histories(got, expected, rtol):
    for t, (ours, theirs) in enumerate(zip(got, expected)):
        for name, a, e in zip("wb", ours, theirs):
            np.testing.assert_allclose(a, e, rtol=rtol, atol=1e-14, err_msg=f"{name} after step {t + 1}")


@pytest.mark.parametrize("setup", list(SETUPS))
@pytest.mark.parametrize("case", list(CASES))
def test_optimizer_matches_numpy_reference_and_torch(case, setup):
    got = graphc_run(case, setup)
    assert not np.allclose(got[-1][0], W0)  # it trained
    assert_histories(got, reference_run(case, setup), rtol=1e-11)
    assert_histories(got, torch_run(case, setup), rtol=1e-12)


def test_lecture_momentum_form_gives_the_same_weights_for_constant_lr():
    """The lecture writes v = mu v - lr g, w = w + v; graphc (PyTorch) v = mu v + g, w = w - lr v."""
    (w, b), step = build("momentum", "plain")[1:]
    params, velocity = [W0.copy(), np.asarray(B0)], [0.0, 0.0]
    for _ in range(STEPS):
        step(X, Y)
        grads = numpy_grads(*params)
        velocity = [0.9 * v - 0.05 * g for v, g in zip(velocity, grads)]
        params = [p + v for p, v in zip(params, velocity)]
        np.testing.assert_allclose(w.get_value(), params[0], rtol=1e-12)
        np.testing.assert_allclose(b.get_value(), params[1], rtol=1e-12)


@pytest.mark.parametrize(
    "schedule",
    [
        optim.Exponential(0.05, 0.8),
        optim.Inv(0.05, 0.5, 0.75),
        optim.Poly(0.05, 2.0, 4),
        optim.Linear(0.01, 0.05, 3),
        optim.Cosine(0.05, 4, min_lr=0.01),
        optim.Sigmoid(0.05, -1.0, 2),
        optim.Chain([optim.Linear(0.0, 0.05, 2), optim.Step(0.05, 0.1, 2)], [2]),
    ],
    ids=repr,
)
def test_every_schedule_drives_sgd_momentum_like_torch(schedule):
    torch = pytest.importorskip("torch")
    (w, b), inputs, loss = problem()
    opt = optim.SGD([w, b], lr=schedule, momentum=0.9)
    step = gc.function(inputs, loss, updates=opt.updates(loss))
    tw, tb = torch.tensor(W0, requires_grad=True), torch.tensor(B0, dtype=torch.float64, requires_grad=True)
    topt = torch.optim.SGD([tw, tb], lr=0.0, momentum=0.9)
    for t in range(STEPS):
        assert opt.lr_value() == pytest.approx(schedule.value(t), rel=1e-15)
        step(X, Y)
        topt.param_groups[0]["lr"] = schedule.value(t)
        topt.zero_grad()
        ((torch.tensor(X) @ tw + tb - torch.tensor(Y)) ** 2).mean().backward()
        topt.step()
        np.testing.assert_allclose(w.get_value(), tw.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(b.get_value(), tb.item(), rtol=1e-12)


# ----- state, dtypes, backends ---------------------------------------------------------------------


def test_updates_cover_params_slots_and_counter_and_reuse_the_slots():
    (w, b), _, loss = problem()
    opt = optim.Adam([w, b], amsgrad=True)
    first = opt.updates(loss)
    slots = {p: dict(s) for p, s in opt.slots.items()}
    assert [v.name for v in opt.slots[w].values()] == ["w.m", "w.v", "w.v_max"]
    assert set(first) == {w, b, opt.iterations, *opt.slots[w].values(), *opt.slots[b].values()}
    opt.updates(loss)
    assert opt.slots == slots  # no second set of state


def test_two_graphs_share_one_optimizer_state():
    (w, b), inputs, loss = problem()
    opt = optim.Adam([w, b], lr=0.05)
    step_a = gc.function(inputs, loss, updates=opt.updates(loss))
    step_b = gc.function(inputs, [], updates=opt.updates(loss))  # a second training graph
    for k in range(4):
        (step_a if k % 2 else step_b)(X, Y)
    assert int(opt.iterations.get_value()) == 4
    assert_histories([[w.get_value(), b.get_value()]], [reference_run("adam", "plain")[3]], rtol=1e-11)


def test_state_dict_round_trip_continues_training_identically():
    opt, (w, b), step = build("rmsprop-centered-momentum", "schedule")
    for _ in range(3):
        step(X, Y)
    saved, weights = opt.state_dict(), [w.get_value(), b.get_value()]
    assert set(saved) == {"iterations", "w.r", "w.m", "w.v", "b.r", "b.m", "b.v"} and saved["iterations"] == 3
    for _ in range(2):
        step(X, Y)
    expected = [w.get_value(), b.get_value()]

    opt2, (w2, b2), step2 = build("rmsprop-centered-momentum", "schedule")
    w2.set_value(weights[0])
    b2.set_value(weights[1])
    opt2.load_state_dict(saved)
    for _ in range(2):
        step2(X, Y)
    np.testing.assert_array_equal(w2.get_value(), expected[0])
    np.testing.assert_array_equal(b2.get_value(), expected[1])

    opt2.reset()
    assert opt2.iterations.get_value() == 0 and not opt2.slots[w2]["r"].get_value().any()
    with pytest.raises(UsageError, match=r"RMSProp: the saved values do not match.*missing: w\.v"):
        opt2.load_state_dict({k: v for k, v in saved.items() if k != "w.v"})
    with pytest.raises(ShapeError, match="w.r has shape"):
        opt2.load_state_dict({**saved, "w.r": np.zeros(4)})


def test_float32_parameters_stay_float32_with_a_schedule():
    opt, (w, b), step = build("adamw-amsgrad", "groups+schedule", dtype="float32")
    x, y = gc.matrix("X", dtype="float32"), gc.vector("y", dtype="float32")
    ups = opt.updates(gc.mean((x @ w + b - y) ** 2))
    assert {v.dtype for k, v in ups.items() if k is not opt.iterations} == {"float32"}
    assert {s.dtype for slots in opt.slots.values() for s in slots.values()} == {"float32"}
    for _ in range(STEPS):
        step(X.astype(np.float32), Y.astype(np.float32))
    assert w.get_value().dtype == np.float32
    expected = reference_run("adamw-amsgrad", "groups+schedule")[-1]
    np.testing.assert_allclose(w.get_value(), expected[0], rtol=1e-5)
    np.testing.assert_allclose(b.get_value(), expected[1], rtol=1e-5)


def test_numba_backend_matches_numpy_backend_for_adam_float32():
    results = []
    for backend in ("numpy", "numba"):
        (w, b), inputs, loss = problem("float32")
        opt = optim.Adam([w, b], lr=optim.Exponential(0.05, 0.9), weight_decay=0.01)
        step = gc.function(inputs, loss, updates=opt.updates(loss), backend=backend)
        for _ in range(STEPS):
            step(X.astype(np.float32), Y.astype(np.float32))
        results.append([w.get_value(), b.get_value(), opt.slots[w]["v"].get_value()])
    for ours, ref in zip(*results):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-8)


def test_module_param_groups_apply_caffe_multipliers():
    class Affine(nn.Module):
        def __init__(self):
            super().__init__("affine")
            self.add_param("w", W0)
            self.add_param("b", np.asarray(B0), lr_mult=2.0, decay_mult=0.0)

        def forward(self, x):
            return x @ self.w + self.b

    model = Affine()
    x, y = gc.matrix("X"), gc.vector("y")
    loss = gc.mean((model(x) - y) ** 2)
    opt = optim.SGD(model, lr=0.05, momentum=0.9, weight_decay=0.1)
    step = gc.function([x, y], loss, updates=opt.updates(loss))
    params = [W0.copy(), np.asarray(B0)]
    states = [{}, {}]
    for t in range(STEPS):
        step(X, Y)
        grads = numpy_grads(*params)
        params = [
            ref_sgd(params[0], grads[0], states[0], t + 1, 0.05, 0.1, momentum=0.9),
            ref_sgd(params[1], grads[1], states[1], t + 1, 0.1, 0.0, momentum=0.9),
        ]
        np.testing.assert_allclose(model.w.get_value(), params[0], rtol=1e-12)
        np.testing.assert_allclose(model.b.get_value(), params[1], rtol=1e-12)


def test_explicit_gradients_replace_the_loss_gradient():
    (w, b), inputs, loss = problem()
    gw, gb = gc.grad(loss, [w, b])
    clipped = [gc.clip(gw, -0.1, 0.1), gc.clip(gb, -0.1, 0.1)]
    opt = optim.SGD([w, b], lr=0.5)
    step = gc.function(inputs, [], updates=opt.updates(grads={b: clipped[1], w: clipped[0]}))
    step(X, Y)
    expected = [p - 0.5 * np.clip(g, -0.1, 0.1) for p, g in zip([W0, B0], numpy_grads(W0, B0))]
    np.testing.assert_allclose(w.get_value(), expected[0], rtol=1e-13)
    np.testing.assert_allclose(b.get_value(), expected[1], rtol=1e-13)


def test_bad_optimizer_arguments_are_named():
    (w, b), (x, _), loss = problem()
    counter = gc.shared(np.int64(0), name="n")
    bad = [
        (lambda: optim.SGD([w, x], lr=0.1), UsageError, "SGD: parameter 1 is .* not a shared variable"),
        (lambda: optim.SGD([w, w], lr=0.1), UsageError, "SGD: parameter w is listed twice"),
        (lambda: optim.Adam([counter]), DTypeError, "Adam: parameter n has dtype int64"),
        (lambda: optim.SGD([], lr=0.1), UsageError, "SGD: got no parameters"),
        (lambda: optim.SGD([{"params": [w], "lr": 2}], lr=0.1), UsageError, r"param group 0 has unknown keys \['lr'\]"),
        (lambda: optim.SGD([{"params": [w]}, b], lr=0.1), UsageError, "mixes param-group dicts"),
        (lambda: optim.SGD([w], lr=-1.0), UsageError, "SGD: lr must be a number >= 0"),
        (lambda: optim.SGD([w], lr="fast"), UsageError, "SGD: lr must be a number or a schedule"),
        (lambda: optim.SGD([w], lr=0.1, nesterov=True), UsageError, "SGD: Nesterov momentum needs momentum > 0"),
        (lambda: optim.Adam([w], betas=(0.9, 1.0)), UsageError, r"Adam: beta2 must be a number in \[0.0, 1.0\)"),
        (lambda: optim.Adam([w], betas=0.9), UsageError, "Adam: betas must be a pair"),
        (lambda: optim.RMSProp([w], alpha=1.5), UsageError, "RMSProp: alpha"),
        (lambda: optim.AdaGrad([w], eps=-1), UsageError, "AdaGrad: eps must be"),
        (lambda: optim.SGD([w], lr=0.1, weight_decay=-0.1), UsageError, "SGD: weight_decay must be"),
        (lambda: optim.SGD([w, b], lr=0.1).updates(grads=[w]), UsageError, "got 1 gradients for 2 parameters"),
        (lambda: optim.SGD([w, b], lr=0.1).updates(grads={w: w}), UsageError, "grads has no gradient for b"),
        (lambda: optim.SGD([w, b], lr=0.1).updates(grads=[b, w]), ShapeError, "the gradient of w is float64"),
        (lambda: optim.SGD([w], lr=0.1).updates(), UsageError, "SGD.updates needs a loss or the gradients"),
        (lambda: optim.SGD([w], lr=gc.vector("r")), UsageError, "a symbolic lr must be a float scalar"),
    ]
    for make, error, message in bad:
        with pytest.raises(error, match=message):
            make()


def test_shared_learning_rate_can_change_between_calls():
    (w, b), inputs, loss = problem()
    lr = gc.shared(0.1, name="lr")
    step = gc.function(inputs, [], updates=optim.SGD([w, b], lr=lr).updates(loss))
    lr.set_value(0.0)
    step(X, Y)
    np.testing.assert_array_equal(w.get_value(), W0)
    lr.set_value(0.2)
    step(X, Y)
    np.testing.assert_allclose(w.get_value(), W0 - 0.2 * numpy_grads(W0, B0)[0], rtol=1e-13)


# ----- schedules -----------------------------------------------------------------------------------

T = np.arange(40)
SCHEDULES = [
    (optim.Constant(0.1), lambda t: 0.1 + 0 * t),
    (optim.Step(0.1, 0.5, 7), lambda t: 0.1 * 0.5 ** (t // 7)),
    (
        optim.MultiStep(0.1, 0.1, [5, 12, 30]),
        lambda t: 0.1 * 0.1 ** sum(np.asarray(t >= m, int) for m in (5, 12, 30)),
    ),
    (optim.Exponential(0.1, 0.95), lambda t: 0.1 * 0.95**t),
    (optim.Exponential(0.1, 0.5, period=10), lambda t: 0.1 * 0.5 ** (t / 10)),
    (optim.Inv(0.01, 1e-1, 0.75), lambda t: 0.01 * (1 + 0.1 * t) ** -0.75),
    (optim.Poly(0.1, 0.5, 25), lambda t: 0.1 * np.sqrt(1 - np.minimum(t, 25) / 25)),
    (optim.Linear(0.0, 0.1, 10), lambda t: np.minimum(t, 10) / 10 * 0.1),
    (optim.Linear(0.1, 0.01, 30), lambda t: 0.1 + (0.01 - 0.1) * np.minimum(t, 30) / 30),
    (optim.Cosine(0.1, 30, 0.001), lambda t: 0.001 + 0.0495 * (1 + np.cos(np.pi * np.minimum(t, 30) / 30))),
    (optim.Sigmoid(0.1, -0.5, 20), lambda t: 0.1 / (1 + np.exp(0.5 * (t - 20)))),
    (
        optim.Chain([optim.Linear(0.0, 0.1, 10), optim.Cosine(0.1, 20)], [10]),
        lambda t: np.where(t < 10, t / 100, 0.05 * (1 + np.cos(np.pi * np.minimum(t - 10, 20) / 20))),
    ),
]


@pytest.mark.parametrize("schedule,formula", SCHEDULES, ids=[repr(s) for s, _ in SCHEDULES])
def test_schedule_value_and_compiled_symbolic_value_follow_the_formula(schedule, formula):
    np.testing.assert_allclose(schedule.value(T), formula(T), rtol=1e-13, atol=1e-18)
    assert isinstance(schedule.value(3), float) and schedule.value(3) == pytest.approx(formula(3), rel=1e-13)
    t = gc.scalar("t", dtype="int64")
    f = gc.function([t], schedule.symbolic(t))
    compiled = np.array([f(np.int64(k)) for k in T])
    np.testing.assert_allclose(compiled, schedule.value(T), rtol=1e-13, atol=1e-18)


def test_schedules_match_torch_schedulers():
    torch = pytest.importorskip("torch")
    sched = torch.optim.lr_scheduler
    pairs = [
        (optim.Step(0.1, 0.5, 3), lambda o: sched.StepLR(o, step_size=3, gamma=0.5)),
        (optim.MultiStep(0.1, 0.1, [2, 5]), lambda o: sched.MultiStepLR(o, milestones=[2, 5], gamma=0.1)),
        (optim.Exponential(0.1, 0.9), lambda o: sched.ExponentialLR(o, gamma=0.9)),
        (optim.Poly(0.1, 2.0, 8), lambda o: sched.PolynomialLR(o, total_iters=8, power=2.0)),
        (optim.Cosine(0.1, 8, 0.01), lambda o: sched.CosineAnnealingLR(o, T_max=8, eta_min=0.01)),
        (optim.Linear(0.01, 0.1, 5), lambda o: sched.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=5)),
    ]
    for ours, make in pairs:
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        theirs = make(opt)
        for t in range(9):
            assert ours.value(t) == pytest.approx(theirs.get_last_lr()[0], rel=1e-12), (ours, t)
            opt.step()
            theirs.step()


SOLVER = """
net: "train_val.prototxt"   # the model
base_lr: 0.01
lr_policy: "multistep"
gamma: 0.1
stepvalue: 100
stepvalue: 250
momentum: 0.9
weight_decay: 0.0005
"""


def test_from_caffe_maps_every_policy():
    cases = {
        "fixed": ({"base_lr": 0.01}, optim.Constant(0.01)),
        "step": ({"base_lr": 0.01, "gamma": 0.1, "stepsize": 100}, optim.Step(0.01, 0.1, 100)),
        "exp": ({"base_lr": 0.01, "gamma": 0.99}, optim.Exponential(0.01, 0.99)),
        "inv": ({"base_lr": 0.01, "gamma": 1e-4, "power": 0.75}, optim.Inv(0.01, 1e-4, 0.75)),
        "multistep": ({"base_lr": 0.01, "gamma": 0.5, "stepvalue": [100, 250]}, optim.MultiStep(0.01, 0.5, [100, 250])),
        "poly": ({"base_lr": 0.01, "power": 2, "max_iter": 300}, optim.Poly(0.01, 2, 300)),
        "sigmoid": ({"base_lr": 0.01, "gamma": -0.05, "stepsize": 150}, optim.Sigmoid(0.01, -0.05, 150)),
    }
    assert set(cases) == set(optim.CAFFE_POLICIES)
    t = np.arange(0, 400, 7)
    for policy, (fields, expected) in cases.items():
        got = optim.from_caffe({"lr_policy": policy, **fields})
        assert type(got) is type(expected)
        np.testing.assert_allclose(got.value(t), expected.value(t), rtol=1e-15)
    # Caffe's own formulas at a few iterations
    assert optim.from_caffe({"lr_policy": "step", **cases["step"][0]}).value(250) == pytest.approx(0.01 * 0.1**2)
    assert optim.from_caffe({"lr_policy": "inv", **cases["inv"][0]}).value(1000) == pytest.approx(0.01 * 1.1**-0.75)
    from_text = optim.from_caffe(SOLVER)
    assert from_text.milestones == [100, 250]
    assert from_text.value([99, 100, 249, 250]) == pytest.approx([0.01, 0.001, 0.001, 0.0001])
    assert optim.from_caffe({"lr_policy": "multistep", "base_lr": 0.1, "gamma": 0.1, "stepvalue": 5}).milestones == [5]


def test_from_caffe_reads_text_as_caffe_does():
    """The solver text goes through graphc.caffe's protobuf text-format parser: several fields on
    one line, [a, b] lists for a repeated field, '#' inside a quoted string."""
    one_line = optim.from_caffe('base_lr: 0.1  momentum: 0.9  lr_policy: "step"  gamma: 0.5  stepsize: 40')
    assert isinstance(one_line, optim.Step) and (one_line.base_lr, one_line.gamma, one_line.step_size) == (0.1, 0.5, 40)
    listed = optim.from_caffe('base_lr: 0.01 lr_policy: "multistep" gamma: 0.1 stepvalue: [100, 250]')
    assert listed.milestones == [100, 250]
    quoted = optim.from_caffe(
        'net: "models/#1/train.prototxt"  # the net\nlr_policy: "inv" base_lr: 0.01\n'
        "gamma: 1e-4 power: 0.75 snapshot_prefix: 'run#2'"
    )
    assert isinstance(quoted, optim.Inv) and quoted.power == 0.75
    nested = optim.from_caffe('lr_policy: "fixed" base_lr: 0.5 train_state { stage: "a" }  # nested messages too')
    assert nested.value(7) == 0.5
    from graphc.caffe import PrototxtError

    with pytest.raises(PrototxtError, match=r"^<solver text>:2:10: expected a value"):
        optim.from_caffe('lr_policy: "fixed"\nbase_lr: }')
    with pytest.raises(UsageError, match="lr_policy 'step': gamma must be a number, got True"):
        optim.from_caffe('lr_policy: "step" base_lr: 0.1 gamma: true stepsize: 3')


def test_from_caffe_and_schedule_errors_name_the_policy_and_parameter():
    bad = [
        ({"base_lr": 0.1}, "the solver has no lr_policy"),
        ({"lr_policy": "cosine", "base_lr": 0.1}, "unknown lr_policy 'cosine'; graphc knows fixed, step"),
        ({"lr_policy": "step", "base_lr": 0.1, "gamma": 0.1}, "lr_policy 'step' needs 'stepsize'"),
        ({"lr_policy": "poly", "base_lr": 0.1, "power": 1}, "lr_policy 'poly' needs 'max_iter'"),
        ({"lr_policy": "inv", "gamma": 0.1, "power": 1}, "lr_policy 'inv' needs 'base_lr'"),
        ({"lr_policy": "exp", "base_lr": "big", "gamma": 0.9}, "lr_policy 'exp': base_lr must be a number"),
        ({"lr_policy": "step", "base_lr": 0.1, "gamma": 0.1, "stepsize": 2.5}, "stepsize must be an integer"),
    ]
    for solver, message in bad:
        with pytest.raises(UsageError, match=message):
            optim.from_caffe(solver)
    with pytest.raises(UsageError, match=r"MultiStep: milestones must increase, got \[5, 3\]"):
        optim.MultiStep(0.1, 0.1, [5, 3])
    with pytest.raises(UsageError, match="Step: step_size must be a positive number"):
        optim.Step(0.1, 0.1, 0)
    with pytest.raises(UsageError, match="Chain: 2 schedules need 1 boundaries"):
        optim.Chain([optim.Constant(1), optim.Constant(2)], [])
    with pytest.raises(UsageError, match="scalar graphc variable"):
        optim.Constant(1.0).symbolic(gc.vector("t"))


def test_plot_draws_one_line_per_schedule():
    fig = optim.plot({"step": optim.Step(0.1, 0.5, 10), "cosine": optim.Cosine(0.1, 50)}, 50)
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["step", "cosine"]
    np.testing.assert_allclose(lines[1].get_ydata(), optim.Cosine(0.1, 50).value(np.arange(50)))


def test_docs_examples_run_and_print_what_they_say(capsys):
    import pathlib
    import re

    doc = pathlib.Path(__file__).resolve().parents[1] / "docs" / "optimizers.md"
    blocks = [b for b in re.findall(r"```python\n(.*?)```", doc.read_text(), re.S) if "model" not in b]
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(doc), "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "300 0.0125"
    assert printed[1] == "MultiStep(base_lr=0.01, gamma=0.1, milestones=[100, 250])"
    assert float(printed[2]) == pytest.approx(1e-4, rel=1e-12)
    np.testing.assert_allclose(namespace["w"].get_value(), [1.0, -2.0, 0.5], atol=1e-3)
