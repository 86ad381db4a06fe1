"""What every executor shares (the interpreter and the C backend stand on it as siblings).

`numerics`: the BF16 contract (storage dtypes, rounding, pad and poison values);
`memory`: buffers and views with valid regions; `arguments`: conversion, checks, binding and
write-back of the arguments of a run; `host`: calls into Python functions bound to HOST stubs;
`faults`: the runtime fault type and the texts both executors raise.
"""
