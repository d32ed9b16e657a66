"""A model's life after training: the registry and champion, offline evaluation, serving."""
