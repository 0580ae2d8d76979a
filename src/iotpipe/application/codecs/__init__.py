"""The stored formats every runtime shares: the raw archive's objects
(:mod:`~iotpipe.application.codecs.archive`) and a window as a flat record
(:mod:`~iotpipe.application.codecs.window`)."""
