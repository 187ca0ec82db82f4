"""Fault injection for the suite's own tests: a CLI shim and an HTTP fault proxy around the real SUT.

`shim.py` is used as the SUT command (`-D mlxk=<wrapper>`); `MLX_E2E_FAULT=<name>` picks the fault.
`catalogue.py` lists every fault, the bug class it stands for, and the behave slice that must catch it.
"""
