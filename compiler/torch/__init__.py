"""The PyTorch backend: lowering to an nn.Module and Python source."""
