"""A small GAN-shaped training run for the kill-and-resume tests (CPU, deterministic).

Everything that makes exact resume hard is here: two networks and two Adam optimizers, an lr
scheduler stepped per epoch, a GradScaler, extra state (a k_t-like value and a history pool of
tensors), random augmentation in the data set, fresh noise from the global RNG every step.
Usage: python tiny_train.py OUT_DIR [TOTAL_STEPS]. Writes OUT_DIR/final.pt when finished.
"""

import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

import colabkit as ck

out = Path(sys.argv[1])
total = int(sys.argv[2]) if len(sys.argv) > 2 else 60
slow = float(os.environ.get("TINY_STEP_SLEEP", "0"))
torch.set_num_threads(1)

if os.environ.get("TINY_SLOW_WRITE"):
    # Imitate a slow destination (Drive): checkpoint writes take a while, so kills land inside them.
    import colabkit.store

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fakefiles import FakeFile

    delay = float(os.environ["TINY_SLOW_WRITE"])
    colabkit.store._open = lambda path, mode: FakeFile(path, mode, delay=delay)

if os.environ.get("TINY_SLOW_PRUNE"):
    # Pause inside pruning, between removing an old checkpoint's checksum and its payload, and say so:
    # the kill tests strike there.
    import colabkit.store

    pause = float(os.environ["TINY_SLOW_PRUNE"])
    real_delete = colabkit.store.LocalStore.delete

    def delete(self, name):
        real_delete(self, name)
        if name.endswith(".pt.sha256") and self.root.name == "checkpoints":
            print(f"PRUNED {name}", flush=True)
            time.sleep(pause)

    colabkit.store.LocalStore.delete = delete

cfg = {"seed": 3, "lr": 1e-3, "batch": 4, "total": total}
run = ck.setup("tiny", cfg, allow_cpu=True, deterministic=True, verbose=False)


class Shapes(torch.utils.data.Dataset):
    def __len__(self):
        return 22   # not a multiple of the batch: epochs end mid-way through the data

    def __getitem__(self, i):
        x = torch.full((3, 8, 8), (i % 5) / 5.0)
        x = x + 0.1 * torch.randn(3, 8, 8)          # "augmentation" from the global RNG
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x


G = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 3 * 8 * 8))
D = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
opt_G = torch.optim.Adam(G.parameters(), lr=cfg["lr"], betas=(0.5, 0.999))
opt_D = torch.optim.Adam(D.parameters(), lr=cfg["lr"], betas=(0.5, 0.999))
sched = torch.optim.lr_scheduler.LambdaLR(opt_G, lambda e: 1.0 / (1 + e))
scaler = run.precision.make_scaler()
train = ck.State(k_t=0.0, pool=[])

# Under torchrun (tests/test_dist.py) the networks train in DDP; one process is unchanged.
G, D = run.ddp(G), run.ddp(D)
loader = ck.ResumableLoader(Shapes(), batch_size=cfg["batch"], seed=cfg["seed"])
loop = run.loop("train", total_steps=total, loader=loader, log_every=5,
                state={"G": G, "D": D, "opt_G": opt_G, "opt_D": opt_D, "sched": sched,
                       "scaler": scaler, "train": train})
for step, x in loop:
    z = torch.randn(x.shape[0], 16)
    fake = G(z).view(-1, 3, 8, 8)
    if len(train.pool) < 5:
        train.pool.append(fake[0].detach().clone())
    elif torch.rand(()) < 0.5:
        j = int(torch.randint(0, 5, ()))
        train.pool[j], fake_for_D = fake[0].detach().clone(), train.pool[j]
    loss_D = (D(x) - 1).pow(2).mean() + D(fake.detach()).pow(2).mean() * (1 - train.k_t)
    opt_D.zero_grad()
    loss_D.backward()
    opt_D.step()
    loss_G = (D(fake) - 1).pow(2).mean()
    opt_G.zero_grad()
    loss_G.backward()
    opt_G.step()
    train.k_t = min(max(train.k_t + 0.01 * float(loss_D.detach() - loss_G.detach()), 0.0), 1.0)
    if loop.end_of_epoch:
        sched.step()
    loop.log(loss_D=loss_D, loss_G=loss_G, k_t=train.k_t)
    if slow:
        time.sleep(slow)

G, D = ck.unwrap(G), ck.unwrap(D)
final = "final.pt" if run.main else f"final-rank{run.world.rank}.pt"
torch.save({"G": G.state_dict(), "D": D.state_dict(), "opt_G": opt_G.state_dict(),
            "opt_D": opt_D.state_dict(), "sched": sched.state_dict(), "k_t": train.k_t,
            "pool": train.pool, "rng": torch.get_rng_state(), "step": loop.step}, out / final)
print("DONE", loop.step)
