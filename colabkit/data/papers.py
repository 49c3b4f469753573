"""The published numbers the notebooks compare with, and where each comes from.

Each entry of :data:`PAPER_NUMBERS` is one table: its title, the metric, which way is better,
the values by row, the source, and a note on the protocol behind the numbers (and on what was not
re-verified). :func:`colabkit.metrics.compare_table` prints a measurement next to one of them.
The papers' settings and protocols are in ``../shared/papers.md``.
"""

from __future__ import annotations

from typing import Any

PAPER_NUMBERS: dict[str, dict[str, Any]] = {
    "began_cifar10_is": {
        "title": "CIFAR-10 Inception Score, unsupervised",
        "metric": "IS",
        "higher_is_better": True,
        "values": {
            "BEGAN": 5.62,
            "ALI": 5.34,
            "DCGAN": 6.16,
            "Improved GAN": 6.86,
            "WGAN-GP": 7.86,
            "Real data": 11.24,
        },
        "source": ("BEGAN 5.62: Berthelot et al. 2017; the other rows as quoted in the same family of "
                   "CIFAR-10 comparison tables"),
        "note": ("The usual protocol of these tables: the original Inception Score code, its ImageNet "
                 "Inception, 50,000 samples, 10 splits. The samples, splits and code behind BEGAN's 5.62 "
                 "are not re-verified from the paper."),
    },
    "began_fid_lucic": {
        "title": "BEGAN FID by data set (Lucic et al. 2018, their own BEGAN variant, large search)",
        "metric": "FID",
        "higher_is_better": False,
        "values": {"MNIST": 13.1, "Fashion-MNIST": 22.9, "CIFAR-10": 71.4, "CelebA": 38.9},
        "source": "Lucic et al. 2018, 'Are GANs Created Equal?'",
        "note": "Best over a large hyperparameter search; not the BEGAN paper's own number.",
    },
    "cyclegan_horse2zebra_fid": {
        "title": "horse2zebra FID (horse to zebra, test set)",
        "metric": "FID",
        "higher_is_better": False,
        "values": {
            "CycleGAN (CUT paper)": 77.2,
            "CycleGAN official model (mmagic)": 62.1,
        },
        "source": ("Park et al. 2020 (CUT), CycleGAN row; mmagic's measurement of the authors' released "
                   "model (trained with the identity loss)"),
        "note": ("CUT's protocol: pytorch-fid, the 120 translated testA images vs the 140 testB images at "
                 "256x256. Test sets this small make FID noisy."),
    },
    "cyclegan_zebra2horse_fid": {
        "title": "zebra2horse FID (zebra to horse, test set)",
        "metric": "FID",
        "higher_is_better": False,
        "values": {
            "CycleGAN official model (mmagic)": 138.6,
            "CycleGAN, mmagic's own training run": 141.2,
        },
        "source": "mmagic's CycleGAN page: the authors' released model, and a run of its own",
        "note": "The 140 translated testB images vs the 120 testA images. Small test sets: FID is noisy.",
    },
    "stackgan_is": {
        "title": "StackGAN Inception Score",
        "metric": "IS",
        "higher_is_better": True,
        "values": {"CUB": 3.70, "Oxford-102": 3.20, "COCO": 8.45},
        "source": "Zhang et al. 2017 (StackGAN)",
        "note": ("30,000 samples, shuffled, 10 splits. CUB and Oxford use an Inception fine-tuned on each "
                 "data set (for CUB: a softmax over the 50 test species); an ImageNet Inception (1,008 "
                 "classes) measures on another scale. COCO's 8.45 uses the ImageNet Inception of the "
                 "original IS code (the authors' StackGAN-inception-model README). CUB ± 0.04 not re-verified."),
    },
    "stackgan_fid": {
        "title": "FID on the StackGAN data sets (later work)",
        "metric": "FID",
        "higher_is_better": False,
        "values": {
            "StackGAN COCO": 74.05,
            "StackGAN Oxford-102": 55.28,
            "AttnGAN CUB": 23.98,
            "DM-GAN CUB": 16.09,
        },
        "source": "Comparison tables of later text-to-image papers",
        "note": "Not from the StackGAN paper itself.",
    },
}
