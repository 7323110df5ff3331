# klconf reproduction of explored-distribution-torch.distributions.kl.kl_divergence-1901faab::torch.distributions.kl.kl_divergence::cpu::float32
# bernoulli||bernoulli via Bernoulli || Bernoulli: 1 of 1 values differ; at [0]: expected 8.5171932, observed 7.27804518 (|diff| 1.24, rel 0.145, ratio observed/expected 0.854512; tolerance 1.64e-05) [inputs there: p=bernoulli(probs=0.5); q=bernoulli(probs=9.99999994e-09)]
import numpy as np
import torch
import torch.distributions as dist

kl = dist.kl_divergence

p = dist.Bernoulli(probs=torch.as_tensor(np.array([0.5], dtype=np.float32)))
q = dist.Bernoulli(probs=torch.as_tensor(np.array([9.99999993922529e-09], dtype=np.float32)))

np.set_printoptions(precision=17)
print('observed:', kl(p, q).numpy())
print('expected:', [8.517193199454972])  # the closed form at these parameters (mpmath, 50 digits)
