"""Shared test settings.

The tests use tiny tensors: one torch thread is fastest, and it keeps the timings steady when
other jobs share the CPU cores (several threads spin-wait and slow tiny ops down a hundredfold).
"""

import torch


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "ignore:Sparse CSR tensor support is in beta")
    torch.set_num_threads(1)
