# Body of every pkgdwmapr, pkgdwjob and pkgdwprc function and procedure:
# DMS_ENTRY (set by the build) names the entry point, the p_ globals are its
# arguments.  dms_pkg.mapper.entry checks the caller's role and runs it.
# A job run's worker sessions are opened first, so they load their code while
# this session loads its own (dms_pkg.mapper.head_start).
from dms_pkg.mapper.head_start import head_start

with dms_errors(plpy):
    booted = head_start(plpy, DMS_ENTRY, globals().get("p_params"))
    from dms_pkg.mapper.entry import call

    return call(plpy, DMS_ENTRY, {k: v for k, v in globals().items() if k.startswith("p_")},
                booted)
