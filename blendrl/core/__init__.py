"""The bottom layer: value types (:mod:`.types`), registries (:mod:`.registry`, :mod:`.registries`), atomic file
writes (:mod:`.fsutil`), text measures (:mod:`.text`) and the process allocator (:mod:`.malloc`). It imports nothing
else from blendrl."""
