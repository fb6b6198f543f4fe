"""Reference pieces of ``torch.nn``: ``helpers.nn.utils`` mirrors ``torch.nn.utils``."""
