"""tinybt: Barlow Twins self-supervised learning from scratch in NumPy."""
