"""Training for ring-tiny and Ring-lite: problem generators, answer verification, Long-CoT SFT,
evaluation and C3PO reinforcement learning. Never imports Django."""
