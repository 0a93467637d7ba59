from trainer.registry import Registry

MODELS: Registry = Registry("model")
