"""Small PyTorch networks more than one test file quantizes its own way."""

from __future__ import annotations

import torch
from torch import nn


class LinearLSTMLinear(nn.Module):
    """Linear -> ReLU -> float LSTM -> Linear on the last step: the LSTM between quantized layers."""

    def __init__(self) -> None:
        super().__init__()
        self.inp, self.lstm, self.out = nn.Linear(6, 8), nn.LSTM(8, 12, batch_first=True), nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(torch.relu(self.inp(x)))
        return self.out(y[:, -1])
