"""The same SymTime-style pretraining step as examples/pretrain_step.rs, in PyTorch (CPU).

Usage: python benches/pytorch_step.py RECIPE.toml BATCH TOKENS STEPS THREADS VOCAB
Builds the architecture from the recipe (pre-LN blocks with a tanh-GELU MLP, [CLS] tokens,
learned positions, projections, reconstruction and MLM heads, EMA copies, queues), runs the
three losses, backward, gradient clipping, AdamW (decay on matrices only), the EMA and queue
update, and prints the mean milliseconds per step after 2 warm-up steps. It computes what the
candle step computes, in the same way: the masked and clean views of each encoder go through
it as one stacked batch, and the MLM head runs on the scored positions only.
"""
import copy
import sys
import time
import tomllib

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, d_ff):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc1, self.fc2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)
        self.heads = heads

    def forward(self, x, bias=None):
        b, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5
        if bias is not None:
            scores = scores + bias
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.out(ctx)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class Transformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg["d_model"], cfg["heads"], cfg["d_ff"]) for _ in range(cfg["layers"]))
        self.norm = nn.LayerNorm(cfg["d_model"])

    def forward(self, x, bias=None):
        for block in self.blocks:
            x = block(x, bias)
        return self.norm(x)


class Towers(nn.Module):
    def __init__(self, m, vocab):
        super().__init__()
        s, y = m["series"], m["symbol"]
        d, e = s["transformer"]["d_model"], y["transformer"]["d_model"]
        self.patch = s["patch"]
        self.patch_embed = nn.Linear(s["patch"], d)
        self.cls = nn.Parameter(torch.zeros(d))
        self.mask = nn.Parameter(torch.randn(d) * 0.02)
        self.series_pos = nn.Parameter(torch.randn(s["length"] // s["patch"] + 1, d) * 0.02)
        self.series = Transformer(s["transformer"])
        self.embed = nn.Embedding(vocab, e)
        self.symbol_pos = nn.Parameter(torch.randn(y["max_tokens"], e) * 0.02)
        self.symbol = Transformer(y["transformer"])
        self.series_proj, self.symbol_proj = nn.Linear(d, m["proj_dim"]), nn.Linear(e, m["proj_dim"])

    def encode_tokens(self, tok):
        tok = torch.cat([self.cls.expand(tok.shape[0], 1, -1), tok], 1) + self.series_pos
        return self.series(tok)

    def encode_series(self, patches):
        return self.encode_tokens(self.patch_embed(patches))

    def encode_series_views(self, patches, mask):
        """(masked view, clean view) states, as one stacked batch."""
        clean = self.patch_embed(patches)
        m = mask.unsqueeze(-1)
        states = self.encode_tokens(torch.cat([clean * (1 - m) + self.mask * m, clean]))
        return states.chunk(2)

    def encode_symbol(self, ids, valid):
        bias = ((1 - valid) * -1e9)[:, None, None, :]
        return self.symbol(self.embed(ids) + self.symbol_pos[: ids.shape[1]], bias)

    def project(self, series_states, symbol_states):
        s = F.normalize(self.series_proj(series_states[:, 0]), dim=-1)
        y = F.normalize(self.symbol_proj(symbol_states[:, 0]), dim=-1)
        return s, y

    def features(self, patches, ids, valid):
        return self.project(self.encode_series(patches), self.encode_symbol(ids, valid))


def info_nce(online, momentum, bank, temp, alpha):
    b = online.shape[0]
    one_hot = torch.zeros(b, bank.shape[0])
    one_hot[:, :b] = torch.eye(b)
    with torch.no_grad():
        soft = alpha * (momentum @ bank.T / temp).softmax(-1) + (1 - alpha) * one_hot
    return -(F.log_softmax(online @ bank.T / temp, -1) * soft).sum(-1).mean()


def main():
    path, batch, tokens, steps, threads, vocab = sys.argv[1], *map(int, sys.argv[2:7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    recipe = tomllib.load(open(path, "rb"))
    m, o = recipe["model"], recipe.get("objectives", {})
    online = Towers(m, vocab)
    momentum = copy.deepcopy(online).requires_grad_(False)
    d = m["series"]["transformer"]["d_model"]
    reconstruct = nn.Linear(d, m["series"]["patch"], bias=False)
    mlm_head = nn.Linear(m["symbol"]["transformer"]["d_model"], vocab)
    temperature = nn.Parameter(torch.tensor([0.07]))
    q = o.get("queue_size", 4096)
    queues = [F.normalize(torch.randn(q, m["proj_dim"]), dim=-1) for _ in range(2)]
    params = list(online.parameters()) + list(reconstruct.parameters()) + list(mlm_head.parameters()) + [temperature]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": recipe["train"]["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-4)

    length, patch = m["series"]["length"], m["series"]["patch"]
    n = length // patch
    series = torch.randn(batch, length)
    ids = torch.randint(4, vocab, (batch, tokens))
    ids[:, 0], ids[:, -1] = 1, 2
    valid = torch.ones(batch, tokens)
    patch_mask = (torch.arange(batch * n) % 5 < 2).float().reshape(batch, n)
    scored = torch.nonzero(torch.arange(batch * tokens) % 7 == 3).squeeze(1)
    ptr, times = 0, []
    print(f"torch {torch.__version__}: d_model {d}, batch {batch}, {n} patches + {tokens} tokens, threads {threads}")
    for step in range(steps + 2):
        t0 = time.perf_counter()
        x = (series - series.mean(-1, keepdim=True)) / (series.std(-1, unbiased=False, keepdim=True) + 1e-5)
        patches = x.reshape(batch, n, patch)
        masked, clean_series = online.encode_series_views(patches, patch_mask)
        per_patch = ((reconstruct(masked[:, 1:]) - patches) ** 2).mean(-1)
        mpm = (per_patch * patch_mask).sum() / patch_mask.sum()
        corrupted, clean_symbol = online.encode_symbol(torch.cat([ids, ids]), torch.cat([valid, valid])).chunk(2)
        log_probs = F.log_softmax(mlm_head(corrupted.reshape(batch * tokens, -1)[scored]), -1)
        mlm = -log_probs.gather(-1, ids.reshape(-1)[scored].unsqueeze(-1)).mean()
        s, y = online.project(clean_series, clean_symbol)
        with torch.no_grad():
            s_m, y_m = momentum.features(patches, ids, valid)
        temp = temperature.clamp(0.001, 0.5)
        itc = (info_nce(s, s_m, torch.cat([y_m, queues[1]]), temp, 0.4) + info_nce(y, y_m, torch.cat([s_m, queues[0]]), temp, 0.4)) / 2
        loss = mpm + mlm + itc
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            temperature.clamp_(0.001, 0.5)
            for mp, op in zip(momentum.parameters(), online.parameters()):
                mp.mul_(0.995).add_(op, alpha=0.005)
            for queue, feats in ((queues[0], s_m), (queues[1], y_m)):
                idx = (torch.arange(batch) + ptr) % q
                queue[idx] = feats
            ptr = (ptr + batch) % q
        if step >= 2:
            times.append((time.perf_counter() - t0) * 1e3)
    print(f"torch ms/step {sum(times) / len(times):.1f}")


if __name__ == "__main__":
    main()
