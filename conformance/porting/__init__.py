"""Porting: the equivalent of a KL call in another framework, composed from conventions and verified.

    port.py        port(): compose and verify; Port, the result
    recipe.py      what the source computes, from its inferred convention (conformance.inference)
    vocabulary.py  each target framework's primitives, and its own KL functions with measured zeros
    compose.py     the recipe written in a vocabulary: a snippet defining equivalent(p, q)
    fed.py         one source call per case and dtype, fed as both sides get it, shared by every target
    verify.py      the snippet against the source call on every tensor-level case, float64 and float32
    records.py     one results Record per source call x target framework (check "porting")
    commands.py    `klconf port`

No source call has per-API porting code: everything follows from the fields inference
reports, so a plug-in Api gets an equivalent the same way a built-in one does.
"""
