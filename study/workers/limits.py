"""The process's resource limits (`ulimit`), which the tool's one-line errors name. Imported by
study/__init__.py before numpy, scipy or torch load: the standard library only."""


def soft_limit(name: str) -> int | None:
    """The soft limit RLIMIT_<name> ("AS": address space, "FSIZE": file size) in bytes; None when
    there is none, or no way to read it (not a Unix)."""
    try:
        import resource
    except ImportError:
        return None
    soft, _ = resource.getrlimit(getattr(resource, f"RLIMIT_{name}"))
    return None if soft == resource.RLIM_INFINITY else soft
