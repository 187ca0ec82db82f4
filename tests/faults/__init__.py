"""Fault injection for the suite's own tests: a CLI shim and an HTTP fault proxy around the real SUT.

`shim.py` is used as the SUT command (`-D mlxk=<wrapper>`); `MLX_E2E_FAULT=<name>` picks the fault.
`catalogue.py` defines every fault once: its bug class, the behave slice that must catch it, and its
implementation; `transport.py` is the proxy's HTTP server that runs a fault's hooks.
"""
