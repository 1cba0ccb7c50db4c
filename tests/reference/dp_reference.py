#!/usr/bin/env python3
"""Opacus 1.6 per-example gradients and one clipped DP-SGD gradient for the tiny Linear + LoRA
model of tests/train/test_dp.cpp ("per-example gradients and the clipped step equal Opacus").

Model: y = x Wᵀ + b + s · (x Aᵀ) Bᵀ, in 4, out 3, rank 2, s = 2; then loss = Σ_{b,t} Σ_o y·c
with c[o] = (o + 1) / 3 (a sum over examples, as libbiolm's loss_sum). Weights from sin:
W[o,i] = sin(0.3 (4 o + i) + 0.1), b[o] = 0.05 o - 0.1, A[r,i] = cos(0.7 (4 r + i)),
B[o,r] = sin(0.9 (2 o + r) + 0.4); x[b,t,i] = sin(0.37 (8 b + 4 t + i) + 0.2), B = 3, T = 2.
Opacus' GradSampleModule hooks nn.Linear (W, b), lora_A and lora_B (bias-free Linears); then
DPOptimizer(noise_multiplier=0, max_grad_norm=C, expected_batch_size=3, loss_reduction="sum").

Run: /opt/biolm-deps/venv/bin/python tests/reference/dp_reference.py > tests/reference/dp_reference.out
"""
import math
import warnings

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer

warnings.filterwarnings("ignore")
torch.set_default_dtype(torch.float64)
S, C = 2.0, 1.5


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.base = torch.nn.Linear(4, 3)
        self.lora_A = torch.nn.Linear(4, 2, bias=False)
        self.lora_B = torch.nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            for o in range(3):
                for i in range(4):
                    self.base.weight[o, i] = math.sin(0.3 * (4 * o + i) + 0.1)
                self.base.bias[o] = 0.05 * o - 0.1
            for r in range(2):
                for i in range(4):
                    self.lora_A.weight[r, i] = math.cos(0.7 * (4 * r + i))
            for o in range(3):
                for r in range(2):
                    self.lora_B.weight[o, r] = math.sin(0.9 * (2 * o + r) + 0.4)

    def forward(self, x):
        return self.base(x) + S * self.lora_B(self.lora_A(x))


x = torch.tensor([[[math.sin(0.37 * (8 * b + 4 * t + i) + 0.2) for i in range(4)] for t in range(2)]
                  for b in range(3)])
c = torch.tensor([(o + 1) / 3 for o in range(3)])
model = GradSampleModule(Tiny(), loss_reduction="sum")  # the default "mean" scales grad samples by B
opt = DPOptimizer(torch.optim.SGD(model.parameters(), lr=1.0), noise_multiplier=0.0, max_grad_norm=C,
                  expected_batch_size=3, loss_reduction="sum")
loss = (model(x) * c).sum()
loss.backward()
names = {"_module.base.weight": "weight", "_module.base.bias": "bias", "_module.lora_A.weight": "lora_a",
         "_module.lora_B.weight": "lora_b"}
norms = torch.zeros(3)
for n, p in model.named_parameters():
    norms += p.grad_sample.reshape(3, -1).pow(2).sum(1)
    print(f"grad_sample {names[n]} {p.grad_sample.reshape(-1).tolist()}")
print(f"norms {norms.sqrt().tolist()}")
opt.pre_step()  # clip, add (zero) noise; loss_reduction "sum": p.grad = the sum of the clipped gradients
for n, p in model.named_parameters():
    print(f"clipped_grad {names[n]} {p.grad.reshape(-1).tolist()}")
