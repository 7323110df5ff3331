# klconf reproduction of explored-distribution-torch.distributions.kl.kl_divergence-1ab8f040::torch.distributions.kl.kl_divergence::cpu::float32
# normal||normal via Normal || Normal: 1 of 1 values differ; at [0]: observed inf where the value is finite (52.4594572) [inputs there: p=normal(loc=0, scale=9.99999968e-22); q=normal(loc=0, scale=100)]
import numpy as np
import torch
import torch.distributions as dist

kl = dist.kl_divergence

p = dist.Normal(loc=torch.as_tensor(np.array([0.0], dtype=np.float32)), scale=torch.as_tensor(np.array([9.999999682655225e-22], dtype=np.float32)))
q = dist.Normal(loc=torch.as_tensor(np.array([0.0], dtype=np.float32)), scale=torch.as_tensor(np.array([100.0], dtype=np.float32)))

np.set_printoptions(precision=17)
print('observed:', kl(p, q).numpy())
print('expected:', [52.45945717059753])  # the closed form at these parameters (mpmath, 50 digits)
