"""BEGAN's gradients from N processes × batch b and from one process × batch N·b (tests/test_dist.py).

Usage: ddp_grads.py OUT.pt [STEPS] — under torchrun each process takes its slice of one fixed global
batch; alone, the process takes all of it. Two steps of the notebook's own train_step (k_t and Adam
included) in float64; rank 0 (or the single process) writes the gradients of the last step and the
weights after it.
"""

import os
import sys
from pathlib import Path

import torch

import colabkit as ck
import colabkit.nbcells

REPO = Path(__file__).resolve().parents[2]
out = Path(sys.argv[1])
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
torch.set_num_threads(1)
nb = ck.nbcells.load(REPO / "notebooks" / "01_began.py")
run = ck.setup("ddp-grads", {"seed": 0}, allow_cpu=True, deterministic=True, verbose=False)
world = run.world

torch.manual_seed(0)
G = nb.init_weights(nb.Generator(16, 8, 8)).double()
D = nb.init_weights(nb.Discriminator(16, 8, 8)).double()
opt_G = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.9, 0.999))
opt_D = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.9, 0.999))
if not os.environ.get("DDP_GRADS_NO_SYNC"):   # the control: each process keeps its own half's gradient
    G, D = run.ddp(G), run.ddp(D)
train = ck.State(k_t=torch.tensor(0.3, dtype=torch.float64), M_sum=torch.zeros((), dtype=torch.float64))
per = 6 // world.size
scaler = torch.amp.GradScaler("cpu", enabled=False)
precision = ck.Precision("fp32", "cpu")
data = torch.Generator().manual_seed(1)
for step in range(steps):
    x_all = torch.rand(6, 3, 16, 16, generator=data, dtype=torch.float64) * 2 - 1
    z_all = torch.rand(2, 6, 8, generator=data, dtype=torch.float64) * 2 - 1
    x = x_all[world.rank * per:(world.rank + 1) * per]
    z_D, z_G = (z[world.rank * per:(world.rank + 1) * per] for z in z_all)
    noise = iter([z_D, z_G])
    nb.train_step.__globals__["sample_z"] = lambda b, z_dim, device, generator=None: next(noise)
    synced = world.distributed and not os.environ.get("DDP_GRADS_NO_SYNC")
    values = nb.train_step(x, G, D, opt_G, opt_D, scaler, train, gamma=0.5, lambda_k=0.001, precision=precision,
                           **({"average": run.average} if synced else {}))
run.leave_to_main()   # as the notebooks end their training: the other processes leave the group and exit
plain_G, plain_D = ck.unwrap(G), ck.unwrap(D)
torch.save({"grad_G": [p.grad for p in plain_G.parameters()], "grad_D": [p.grad for p in plain_D.parameters()],
            "G": plain_G.state_dict(), "D": plain_D.state_dict(), "k_t": train.k_t,
            "L_x": values["L_x"], "L_G": values["L_G"]}, out)
print("DONE", flush=True)
# Straight out, as the other process left in leave_to_main: at interpreter teardown gloo's threads
# sometimes abort a finished process (exit -6), which torchrun reports as a failure.
if world.distributed:
    os._exit(0)
