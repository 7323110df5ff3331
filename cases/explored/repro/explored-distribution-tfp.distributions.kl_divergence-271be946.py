# klconf reproduction of explored-distribution-tfp.distributions.kl_divergence-271be946::tfp.distributions.kl_divergence::cpu::float32
# half_normal||half_normal via HalfNormal || HalfNormal: 1 of 1 values differ; at [0]: observed NaN where the value is 43.9422639 [inputs there: p=half_normal(scale=1); q=half_normal(scale=2e+19)]
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

dist = tfp.distributions
kl = dist.kl_divergence

p = dist.HalfNormal(scale=tf.constant(np.array([1.0], dtype=np.float32)))
q = dist.HalfNormal(scale=tf.constant(np.array([1.9999999961012896e+19], dtype=np.float32)))

np.set_printoptions(precision=17)
print('observed:', kl(p, q).numpy())
print('expected:', [43.94226394549746])  # the closed form at these parameters (mpmath, 50 digits)
