# klconf reproduction of explored-distribution-torch.distributions.kl.kl_divergence-f5f6cab3::torch.distributions.kl.kl_divergence::cpu::float32
# geometric||geometric via Geometric || Geometric: 1 of 1 values differ; at [0]: expected 14.7318014, observed 14.5560904 (|diff| 0.176, rel 0.0119, ratio observed/expected 0.988073; tolerance 1.66e-05) [inputs there: p=geometric(probs=0.5); q=geometric(probs=1.00000001e-07)]
import numpy as np
import torch
import torch.distributions as dist

kl = dist.kl_divergence

p = dist.Geometric(probs=torch.as_tensor(np.array([0.5], dtype=np.float32)))
q = dist.Geometric(probs=torch.as_tensor(np.array([1.0000000116860974e-07], dtype=np.float32)))

np.set_printoptions(precision=17)
print('observed:', kl(p, q).numpy())
print('expected:', [14.731801378152339])  # the closed form at these parameters (mpmath, 50 digits)
