"""Runtime stub for HF transformers 4.47 on Debian's torch 1.13: importing torch.distributed.fsdp
fails there (a dataclass with a mutable default), and generate() only asks whether the model is
FSDP-managed. Nothing of the model math is touched."""


def patch():
    import transformers.generation.utils as gu
    import transformers.integrations.fsdp as fsdp

    def is_fsdp_managed_module(module):
        return bool(getattr(module, "_is_fsdp_managed_module", False))

    fsdp.is_fsdp_managed_module = is_fsdp_managed_module
    if hasattr(gu, "is_fsdp_managed_module"):
        gu.is_fsdp_managed_module = is_fsdp_managed_module
