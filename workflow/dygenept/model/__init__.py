"""The DyGenePT model: the network (``network``), its training (``training``), inference and checkpoints."""
