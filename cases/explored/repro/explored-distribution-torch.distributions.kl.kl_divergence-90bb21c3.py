# klconf reproduction of explored-distribution-torch.distributions.kl.kl_divergence-90bb21c3::torch.distributions.kl.kl_divergence::cpu::float32
# uniform||uniform via Uniform || Uniform: 1 of 1 values differ; at [0]: observed inf where the value is finite (89.8008187) [inputs there: p=uniform(low=0, high=9.99999972e-10); q=uniform(low=0, high=1.00000002e+30)]
import numpy as np
import torch
import torch.distributions as dist

kl = dist.kl_divergence

p = dist.Uniform(low=torch.as_tensor(np.array([0.0], dtype=np.float32)), high=torch.as_tensor(np.array([9.999999717180685e-10], dtype=np.float32)))
q = dist.Uniform(low=torch.as_tensor(np.array([0.0], dtype=np.float32)), high=torch.as_tensor(np.array([1.0000000150474662e+30], dtype=np.float32)))

np.set_printoptions(precision=17)
print('observed:', kl(p, q).numpy())
print('expected:', [89.80081867009719])  # the closed form at these parameters (mpmath, 50 digits)
