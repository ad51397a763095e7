"""The model core: networks, autoencoders, optimizers and training loops over torch batches.

Nothing here reads files or knows the CLI; settings come in as textrelu.settings objects.
"""
