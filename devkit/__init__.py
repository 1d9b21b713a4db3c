"""The development kit: the local AWS harness (moto, the stack from template.yaml, the real handlers),
the demo and its data. Used by `make demo`, the tests and the benches; not part of the product
(`pip install .` installs `budgetkeeper` and `budgetkeeper_cli` only, and needs no moto).
"""
