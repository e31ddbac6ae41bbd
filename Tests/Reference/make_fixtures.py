#!/usr/bin/env python3
"""Generate the PyTorch reference fixtures the Swift tests compare against.

Command that produced the committed fixtures (from the repository root, torch 2.15 CPU):
    python3 Tests/Reference/make_fixtures.py Tests/RecurrentTests/Fixtures

Everything is computed in float64 from parameters and inputs that are exact float32 values,
so the fixtures are the exact answers and the Swift float32 results are compared to them.
The GRU with the reset gate before the recurrent product (Cho et al. 2014, Keras
reset_after=False) has no PyTorch module: it is the short loop in `gru_reset_before` below; nor
has the peephole LSTM (Gers & Schmidhuber 2000): `lstm_peephole` below, on an `nn.LSTM`'s four
tensors per direction plus `peephole_l{k}` [3H] (p_i|p_f|p_o); nor have minGRU and minLSTM
(Feng et al. 2024): `min_cells` below is the paper's parallel log-space form (cumulative sums
and logcumsumexp over time), with `weight_ih_l{k}`/`bias_ih_l{k}` only and a positive h0 (the
log-space form takes log h0); nor have haste's LayerNormGRU and LayerNormLSTM: `layer_norm_cells`
below, on an nn.GRU's or nn.LSTM's four tensors plus `layer_norm_l{k}` (the gains).
"""
import json
import os
import sys

import torch

torch.set_default_dtype(torch.float64)
I, H, B, T = 7, 6, 3, 5


def f32(t):
    """Round to float32 and back, so the value is exactly representable in float32."""
    return t.float().double()


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def stack_layers(x, layers, dirs, run):
    """Layers of directions: run(layer_in, index, sfx, reverse) gives one direction's output
    [T, B, H] (in time order) and its final h and c (None without a cell state)."""
    layer_in = x
    finals_h, finals_c = [], []
    for l in range(layers):
        outs = []
        for d in range(dirs):
            out, h, c = run(layer_in, l * dirs + d, f"_l{l}" + ("_reverse" if d else ""), d == 1)
            outs.append(out)
            finals_h.append(h)
            finals_c.append(c)
        layer_in = torch.cat(outs, dim=2)
    return layer_in, torch.stack(finals_h), (None if finals_c[0] is None else torch.stack(finals_c))


def gru_reset_before(x, h0, params, layers, dirs):
    def run(layer_in, index, sfx, reverse):
        w_ih, w_hh = params["weight_ih" + sfx], params["weight_hh" + sfx]
        b_ih, b_hh = params["bias_ih" + sfx], params["bias_hh" + sfx]
        w_hr, w_hz, w_hn = w_hh.chunk(3)
        b_hr, b_hz, b_hn = b_hh.chunk(3)
        h = h0[index]
        out = [None] * x.shape[0]
        for t in reversed(range(x.shape[0])) if reverse else range(x.shape[0]):
            x_r, x_z, x_n = (layer_in[t] @ w_ih.T + b_ih).chunk(3, dim=1)
            r = torch.sigmoid(x_r + h @ w_hr.T + b_hr)
            z = torch.sigmoid(x_z + h @ w_hz.T + b_hz)
            n = torch.tanh(x_n + (r * h) @ w_hn.T + b_hn)
            h = (1 - z) * n + z * h
            out[t] = h
        return torch.stack(out), h, None

    return stack_layers(x, layers, dirs, run)[:2]


def lstm_peephole(x, h0, c0, params, layers, dirs):
    def run(layer_in, index, sfx, reverse):
        w_ih, w_hh = params["weight_ih" + sfx], params["weight_hh" + sfx]
        b = params["bias_ih" + sfx] + params["bias_hh" + sfx]
        p_i, p_f, p_o = params["peephole" + sfx].chunk(3)
        h, c = h0[index], c0[index]
        out = [None] * x.shape[0]
        for t in reversed(range(x.shape[0])) if reverse else range(x.shape[0]):
            gi, gf, gg, go = (layer_in[t] @ w_ih.T + h @ w_hh.T + b).chunk(4, dim=1)
            i = torch.sigmoid(gi + p_i * c)
            f = torch.sigmoid(gf + p_f * c)
            c = f * c + i * torch.tanh(gg)
            o = torch.sigmoid(go + p_o * c)
            h = o * torch.tanh(c)
            out[t] = h
        return torch.stack(out), h, c

    return stack_layers(x, layers, dirs, run)


def layer_norm_cells(cell, x, h0, c0, params, layers, dirs):
    """haste's LayerNormGRU / LayerNormLSTM in PyTorch's gate order and two biases:
    gx = LN(x W_ih^T) gamma_x + b_ih, gh = LN(h W_hh^T) gamma_h + b_hh (LN over the row's G*H
    values, eps 1e-5, no shift), then the GRU (reset after) or LSTM step; the LSTM's output is
    o * tanh(LN(c') gamma_c + beta_c). layer_norm_l{k} = gamma_x|gamma_h(|gamma_c|beta_c)."""
    ln = torch.nn.functional.layer_norm

    def run(layer_in, index, sfx, reverse):
        w_ih, w_hh = params["weight_ih" + sfx], params["weight_hh" + sfx]
        b_ih, b_hh = params["bias_ih" + sfx], params["bias_hh" + sfx]
        gains = params["layer_norm" + sfx]
        G = w_ih.shape[0]
        Wx = ln(layer_in @ w_ih.T, (G,), weight=gains[:G], eps=1e-5) + b_ih
        h, c = h0[index], (c0[index] if c0 is not None else None)
        out = [None] * x.shape[0]
        for t in reversed(range(x.shape[0])) if reverse else range(x.shape[0]):
            Rh = ln(h @ w_hh.T, (G,), weight=gains[G:2 * G], eps=1e-5) + b_hh
            if cell == "gru-ln":
                x_r, x_z, x_n = Wx[t].chunk(3, dim=1)
                h_r, h_z, h_n = Rh.chunk(3, dim=1)
                r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
                h = (1 - z) * torch.tanh(x_n + r * h_n) + z * h
            else:
                i, f, g, o = (Wx[t] + Rh).chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                H = c.shape[1]
                h = torch.sigmoid(o) * torch.tanh(
                    ln(c, (H,), weight=gains[2 * G:2 * G + H], bias=gains[2 * G + H:], eps=1e-5))
            out[t] = h
        return torch.stack(out), h, c

    return stack_layers(x, layers, dirs, run)


def log_g(x):
    """log of g(x) = x + 0.5 (x >= 0), sigmoid(x) (x < 0)."""
    return torch.where(x >= 0, torch.log(torch.relu(x) + 0.5), -torch.nn.functional.softplus(-x))


def parallel_scan_log(log_coeffs, log_values):
    """h_t = a_t h_{t-1} + b_t for all t at once (time on dim 0): log_values[0] = log h0,
    log_values[1:] = log b, log_coeffs = log a. The paper's Listing: a* = cumsum(log a),
    log h = a* + logcumsumexp(log_values - a*)."""
    a_star = torch.nn.functional.pad(torch.cumsum(log_coeffs, dim=0), (0, 0, 0, 0, 1, 0))
    log_h = a_star + torch.logcumsumexp(log_values - a_star, dim=0)
    return torch.exp(log_h)[1:]


def min_cells(cell, x, h0, params, layers, dirs):
    softplus = torch.nn.functional.softplus

    def run(layer_in, index, sfx, reverse):
        k = layer_in @ params["weight_ih" + sfx].T + params["bias_ih" + sfx]  # [T, B, G*H]
        if reverse:
            k = k.flip(0)
        if cell == "min-gru":
            k_z, k_h = k.chunk(2, dim=2)
            log_a, log_b = -softplus(k_z), -softplus(-k_z) + log_g(k_h)
        else:
            k_f, k_i, k_h = k.chunk(3, dim=2)
            diff = softplus(-k_f) - softplus(-k_i)
            log_a, log_b = -softplus(diff), -softplus(-diff) + log_g(k_h)
        h = parallel_scan_log(log_a, torch.cat([torch.log(h0[index])[None], log_b], dim=0))
        return (h.flip(0) if reverse else h), h[-1], None

    return stack_layers(x, layers, dirs, run)[:2]


def recurrent_case(cell, layers, bidirectional, seed, proj_size=0):
    g = torch.Generator().manual_seed(seed)
    dirs = 2 if bidirectional else 1
    if cell in ("rnn-tanh", "rnn-relu"):
        module = torch.nn.RNN(I, H, layers, nonlinearity=cell[4:], bidirectional=bidirectional)
    elif cell in ("lstm", "lstm-peephole", "lstm-ln"):
        module = torch.nn.LSTM(I, H, layers, bidirectional=bidirectional, proj_size=proj_size)
    elif cell in ("min-gru", "min-lstm"):
        G = 2 if cell == "min-gru" else 3
        module = torch.nn.ParameterDict()
        for l in range(layers):
            for d in range(dirs):
                sfx = f"_l{l}" + ("_reverse" if d else "")
                module["weight_ih" + sfx] = torch.nn.Parameter(torch.zeros(G * H, I if l == 0 else dirs * H))
                module["bias_ih" + sfx] = torch.nn.Parameter(torch.zeros(G * H))
    else:
        module = torch.nn.GRU(I, H, layers, bidirectional=bidirectional)
    params = {}
    for name, p in module.named_parameters():
        with torch.no_grad():
            p.copy_(f32(torch.rand(p.shape, generator=g) * 2 - 1) * 0.6)
        params[name] = p
    names = [n for n, _ in module.named_parameters()]
    if cell in ("lstm-peephole", "gru-ln", "lstm-ln"):
        # Our order: each direction's four tensors, then its own: peepholes in [-1, 1], layer-norm
        # gains (and the LSTM's shift) around 1 (0).
        ordered = []
        for n in names:
            ordered.append(n)
            if n.startswith("bias_hh"):
                if cell == "lstm-peephole":
                    own, values = "peephole", f32(torch.rand(3 * H, generator=g) * 2 - 1)
                else:
                    G = (3 if cell == "gru-ln" else 4) * H
                    values = torch.rand(2 * G + (2 * H if cell == "lstm-ln" else 0), generator=g) + 0.5
                    if cell == "lstm-ln":
                        values[2 * G + H:] -= 1
                    own, values = "layer_norm", f32(values)
                params[own + n[len("bias_hh"):]] = values.requires_grad_()
                ordered.append(own + n[len("bias_hh"):])
        names = ordered
    x = f32(torch.randn(T, B, I, generator=g)).requires_grad_()
    if cell.startswith("min-"):
        h0 = f32(torch.rand(layers * dirs, B, H, generator=g) * 0.9 + 0.05).requires_grad_()
    else:
        h0 = f32(torch.randn(layers * dirs, B, proj_size or H, generator=g) * 0.5).requires_grad_()
    c0 = f32(torch.randn(layers * dirs, B, H, generator=g) * 0.5).requires_grad_()
    if cell == "lstm":
        out, (hn, cn) = module(x, (h0, c0))
    elif cell == "lstm-peephole":
        out, hn, cn = lstm_peephole(x, h0, c0, params, layers, dirs)
    elif cell.startswith("min-"):
        out, hn = min_cells(cell, x, h0, params, layers, dirs)
        cn = None
    elif cell in ("gru-ln", "lstm-ln"):
        out, hn, cn = layer_norm_cells(cell, x, h0, c0 if cell == "lstm-ln" else None, params, layers, dirs)
    elif cell == "gru-reset-before":
        out, hn = gru_reset_before(x, h0, params, layers, dirs)
        cn = None
    else:
        out, hn = module(x, h0)
        cn = None
    g_out = f32(torch.randn(out.shape, generator=g))
    g_hn = f32(torch.randn(hn.shape, generator=g))
    loss = (out * g_out).sum() + (hn * g_hn).sum()
    g_cn = None
    if cn is not None:
        g_cn = f32(torch.randn(cn.shape, generator=g))
        loss = loss + (cn * g_cn).sum()
    has_c = cell in ("lstm", "lstm-peephole", "lstm-ln")
    inputs = [x, h0] + ([c0] if has_c else []) + [params[n] for n in names]
    grads = torch.autograd.grad(loss, inputs)
    case = {
        "cell": cell, "layers": layers, "bidirectional": bidirectional, "proj_size": proj_size,
        "input_size": I, "hidden_size": H, "batch": B, "length": T,
        "parameter_names": names,
        "parameters": {n: flat(params[n]) for n in names},
        "x": flat(x), "h0": flat(h0), "output": flat(out), "h_n": flat(hn),
        "grad_output": flat(g_out), "grad_h_n": flat(g_hn),
        "grad_x": flat(grads[0]), "grad_h0": flat(grads[1]),
    }
    offset = 2
    if has_c:
        case.update({"c0": flat(c0), "c_n": flat(cn), "grad_c_n": flat(g_cn), "grad_c0": flat(grads[2])})
        offset = 3
    case["grad_parameters"] = {n: flat(grads[offset + i]) for i, n in enumerate(names)}
    return case


def optimizer_cases():
    g = torch.Generator().manual_seed(99)
    p0 = f32(torch.randn(5, generator=g))
    grads = [f32(torch.randn(5, generator=g)) for _ in range(6)]
    configs = [
        {"name": "sgd", "kind": "sgd", "lr": 0.1},
        {"name": "sgd-momentum", "kind": "sgd", "lr": 0.1, "momentum": 0.9},
        {"name": "sgd-nesterov-wd", "kind": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        {"name": "sgd-dampening", "kind": "sgd", "lr": 0.1, "momentum": 0.9, "dampening": 0.1},
        {"name": "sgd-l1", "kind": "sgd", "lr": 0.1, "l1": 0.05},
        {"name": "rmsprop", "kind": "rmsprop", "lr": 0.01},
        {"name": "rmsprop-centered-momentum-wd", "kind": "rmsprop", "lr": 0.01, "alpha": 0.9, "momentum": 0.9, "centered": True, "weight_decay": 0.01},
        {"name": "adam", "kind": "adam", "lr": 0.01},
        {"name": "adam-l2-betas", "kind": "adam", "lr": 0.01, "beta1": 0.8, "beta2": 0.95, "weight_decay": 0.01},
        {"name": "adamw", "kind": "adamw", "lr": 0.01, "weight_decay": 0.1},
        {"name": "adam-cosine", "kind": "adam", "lr": 0.01, "schedule": {"kind": "cosine", "t_max": 4, "eta_min": 0.001}},
    ]
    cases = []
    for c in configs:
        p = p0.clone().requires_grad_()
        k = c["kind"]
        if k == "sgd":
            opt = torch.optim.SGD([p], lr=c["lr"], momentum=c.get("momentum", 0), dampening=c.get("dampening", 0),
                                  nesterov=c.get("nesterov", False), weight_decay=c.get("weight_decay", 0))
        elif k == "rmsprop":
            opt = torch.optim.RMSprop([p], lr=c["lr"], alpha=c.get("alpha", 0.99), eps=1e-8, momentum=c.get("momentum", 0),
                                      centered=c.get("centered", False), weight_decay=c.get("weight_decay", 0))
        elif k == "adam":
            opt = torch.optim.Adam([p], lr=c["lr"], betas=(c.get("beta1", 0.9), c.get("beta2", 0.999)), eps=1e-8,
                                   weight_decay=c.get("weight_decay", 0))
        else:
            opt = torch.optim.AdamW([p], lr=c["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=c["weight_decay"])
        sched = None
        if "schedule" in c:
            s = c["schedule"]
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s["t_max"], eta_min=s["eta_min"])
        trajectory = []
        for gi in grads:
            opt.zero_grad()
            loss = (p * gi).sum() + c.get("l1", 0) * p.abs().sum()
            loss.backward()
            opt.step()
            if sched:
                sched.step()
            trajectory.append(flat(p))
        cases.append(dict(c, p0=flat(p0), grads=[flat(x) for x in grads], trajectory=trajectory))
    return cases


def schedule_cases():
    out = []
    specs = [
        ({"kind": "step", "step_size": 3, "gamma": 0.5}, lambda o: torch.optim.lr_scheduler.StepLR(o, 3, 0.5)),
        ({"kind": "exponential", "gamma": 0.9}, lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)),
        ({"kind": "cosine", "t_max": 10, "eta_min": 0.001}, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 10, 0.001)),
        ({"kind": "linear-warmup", "start_factor": 0.1, "steps": 4}, lambda o: torch.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, 4)),
    ]
    for spec, make in specs:
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.1)
        sched = make(opt)
        lrs = []
        for _ in range(12):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        out.append(dict(spec, base_lr=0.1, lrs=lrs))
    return out


def clipping_case():
    g = torch.Generator().manual_seed(5)
    a = torch.nn.Parameter(torch.zeros(3, 4))
    b = torch.nn.Parameter(torch.zeros(5))
    ga, gb = f32(torch.randn(3, 4, generator=g)), f32(torch.randn(5, generator=g))
    a.grad, b.grad = ga.clone(), gb.clone()
    norm = torch.nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
    by_norm = [flat(a.grad), flat(b.grad)]
    a.grad, b.grad = ga.clone(), gb.clone()
    torch.nn.utils.clip_grad_value_([a, b], clip_value=0.5)
    return {"grads": [flat(ga), flat(gb)], "max_norm": 1.0, "total_norm": float(norm),
            "clipped_by_norm": by_norm, "clip_value": 0.5, "clipped_by_value": [flat(a.grad), flat(b.grad)]}


def loss_cases():
    g = torch.Generator().manual_seed(11)
    logits = f32(torch.randn(6, 5, generator=g) * 3)
    logits[2, 1] = 80.0  # large logits must stay finite
    logits[4, 3] = -90.0
    targets = torch.tensor([1, 0, 1, 4, -100, 2])
    lg = logits.clone().requires_grad_()
    ce = torch.nn.functional.cross_entropy(lg, targets, ignore_index=-100)
    (ce_grad,) = torch.autograd.grad(ce, lg)
    pred = f32(torch.randn(4, 3, generator=g)).requires_grad_()
    target = f32(torch.randn(4, 3, generator=g))
    mse = torch.nn.functional.mse_loss(pred, target)
    (mse_grad,) = torch.autograd.grad(mse, pred)
    bl = f32(torch.randn(7, generator=g) * 4)
    bl[0] = 60.0
    bl[1] = -60.0
    bl = bl.requires_grad_()
    by = f32(torch.rand(7, generator=g).round())
    bce = torch.nn.functional.binary_cross_entropy_with_logits(bl, by)
    (bce_grad,) = torch.autograd.grad(bce, bl)
    return {
        "logits": flat(logits), "targets": targets.tolist(), "ignore_index": -100,
        "cross_entropy": float(ce), "cross_entropy_grad": flat(ce_grad),
        "mse_prediction": flat(pred), "mse_target": flat(target), "mse": float(mse), "mse_grad": flat(mse_grad),
        "bce_logits": flat(bl), "bce_targets": flat(by), "bce": float(bce), "bce_grad": flat(bce_grad),
    }


def linear_embedding_case():
    g = torch.Generator().manual_seed(21)
    result = {}
    x = f32(torch.randn(4, 7, generator=g))
    w = f32(torch.rand(5, 7, generator=g) - 0.5)
    b = f32(torch.rand(5, generator=g) - 0.5)
    gy = f32(torch.randn(4, 5, generator=g))
    for act in ["none", "relu", "sigmoid", "tanh", "softmax"]:
        xi, wi, bi = x.clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()
        y = xi @ wi.T + bi
        y = {"none": y, "relu": torch.relu(y), "sigmoid": torch.sigmoid(y), "tanh": torch.tanh(y),
             "softmax": torch.softmax(y, dim=-1)}[act]
        gx, gw, gb = torch.autograd.grad((y * gy).sum(), [xi, wi, bi])
        result[act] = {"y": flat(y), "grad_x": flat(gx), "grad_weight": flat(gw), "grad_bias": flat(gb)}
    emb = f32(torch.randn(6, 3, generator=g)).requires_grad_()
    ids = torch.tensor([[1, 5, 1], [0, 2, 1]])
    ge = f32(torch.randn(2, 3, 3, generator=g))
    out = torch.nn.functional.embedding(ids, emb)
    (gemb,) = torch.autograd.grad((out * ge).sum(), [emb])
    return {"x": flat(x), "weight": flat(w), "bias": flat(b), "grad_y": flat(gy), "activations": result,
            "embedding": flat(emb), "ids": ids.reshape(-1).tolist(), "grad_embedded": flat(ge),
            "embedded": flat(out), "grad_embedding": flat(gemb)}


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "Tests/RecurrentTests/Fixtures"
    os.makedirs(out_dir, exist_ok=True)
    cases = []
    seed = 1
    for cell in ["rnn-tanh", "rnn-relu", "lstm", "gru", "gru-reset-before", "lstm-peephole", "min-gru", "min-lstm"]:
        for layers in (1, 2):
            for bidirectional in (False, True):
                cases.append(recurrent_case(cell, layers, bidirectional, seed))
                seed += 1
    for layers in (1, 2):  # PyTorch's proj_size: h is [P] wide, W_hh [4H, P], weight_hr_l{k} [P, H]
        for bidirectional in (False, True):
            cases.append(recurrent_case("lstm", layers, bidirectional, seed, proj_size=4))
            seed += 1
    for cell in ["gru-ln", "lstm-ln"]:
        for layers in (1, 2):
            for bidirectional in (False, True):
                cases.append(recurrent_case(cell, layers, bidirectional, seed))
                seed += 1
    with open(os.path.join(out_dir, "recurrent_layers.json"), "w") as f:
        json.dump(cases, f)
    with open(os.path.join(out_dir, "training.json"), "w") as f:
        json.dump({"optimizers": optimizer_cases(), "schedules": schedule_cases(), "clipping": clipping_case(),
                   "losses": loss_cases(), "layers": linear_embedding_case()}, f)
    print(f"wrote {len(cases)} recurrent cases to {out_dir}")


if __name__ == "__main__":
    main()
