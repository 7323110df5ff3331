"""Distribution-level KL: KL(P||Q) between two distribution objects, against closed forms.

The pieces, in the order data flows through them:

  families.py      the vocabulary: each family's canonical parameters and support, and how each
                   library spells it (class, keyword names, conversions) -- as data
  closed_forms.py  the mpmath oracle: KL for every covered pair, as a list of terms (50 digits)
  numeric.py       the same KL by quadrature or summation, for klconf's own tests of the oracle
  cases.py         cases/distributions/*.yaml: safe YAML, schema, file:line:field problems
  stored.py        `klconf cases check` / `fill` for the values those files store
  libraries.py     the adapters (the only place torch.distributions, TFP and distrax are imported)
  runner.py        one check: a case through one library, on a device, in a dtype -> a Record
  registry.py      which pairs each library registers, and which of them the oracle covers

Nothing here but libraries.py imports a framework, and it does so lazily.
"""
