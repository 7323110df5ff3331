# klconf reproduction of explored-distribution-torch.distributions.kl.kl_divergence-f2aa2f3a::torch.distributions.kl.kl_divergence::cpu::float32
# laplace||normal via Laplace || Normal: 1 of 1 values differ; at [0]: observed inf where the value is finite (43.6680553) [inputs there: p=laplace(loc=0, scale=1); q=normal(loc=0, scale=2e+19)]
import numpy as np
import torch
import torch.distributions as dist

kl = dist.kl_divergence

p = dist.Laplace(loc=torch.as_tensor(np.array([0.0], dtype=np.float32)), scale=torch.as_tensor(np.array([1.0], dtype=np.float32)))
q = dist.Normal(loc=torch.as_tensor(np.array([0.0], dtype=np.float32)), scale=torch.as_tensor(np.array([1.9999999961012896e+19], dtype=np.float32)))

np.set_printoptions(precision=17)
print('observed:', kl(p, q).numpy())
print('expected:', [43.668055298142185])  # the closed form at these parameters (mpmath, 50 digits)
