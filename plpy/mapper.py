# Body of every pkgdwmapr, pkgdwjob and pkgdwprc function and procedure:
# DMS_ENTRY (set by the build) names the entry point, the p_ globals are its
# arguments.  dms_pkg.mapper.entry checks the caller's role and runs it.
from dms_pkg.mapper.entry import call

with dms_errors(plpy):
    return call(plpy, DMS_ENTRY, {k: v for k, v in globals().items() if k.startswith("p_")})
