# klconf reproduction of explored-distribution-torch.distributions.kl.kl_divergence-88651d8c::torch.distributions.kl.kl_divergence::cpu::float32
# bernoulli||poisson via Bernoulli || Poisson: 1 of 1 values differ; at [0]: observed NaN where the value is 0 [inputs there: p=bernoulli(probs=0); q=poisson(rate=0)]
import numpy as np
import torch
import torch.distributions as dist

kl = dist.kl_divergence

p = dist.Bernoulli(probs=torch.as_tensor(np.array([0.0], dtype=np.float32)))
q = dist.Poisson(rate=torch.as_tensor(np.array([0.0], dtype=np.float32)))

np.set_printoptions(precision=17)
print('observed:', kl(p, q).numpy())
print('expected:', [0.0])  # the closed form at these parameters (mpmath, 50 digits)
