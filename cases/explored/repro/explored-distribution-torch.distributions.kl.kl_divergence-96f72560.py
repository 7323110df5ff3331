# klconf reproduction of explored-distribution-torch.distributions.kl.kl_divergence-96f72560::torch.distributions.kl.kl_divergence::cpu::float32
# cauchy||cauchy via Cauchy || Cauchy: 1 of 1 values differ; at [0]: observed inf where the value is finite (43.0559696) [inputs there: p=cauchy(loc=0, scale=1); q=cauchy(loc=0, scale=2e+19)]
import numpy as np
import torch
import torch.distributions as dist

kl = dist.kl_divergence

p = dist.Cauchy(loc=torch.as_tensor(np.array([0.0], dtype=np.float32)), scale=torch.as_tensor(np.array([1.0], dtype=np.float32)))
q = dist.Cauchy(loc=torch.as_tensor(np.array([0.0], dtype=np.float32)), scale=torch.as_tensor(np.array([1.9999999961012896e+19], dtype=np.float32)))

np.set_printoptions(precision=17)
print('observed:', kl(p, q).numpy())
print('expected:', [43.055969584377564])  # the closed form at these parameters (mpmath, 50 digits)
